using System.Text.Json.Nodes;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Migrations;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Tests.Controllers;

/// <summary>
/// The migration limits as data: VirtualMachineMigrations as the informer has them, each VM on a host of its own
/// unless a case says otherwise. Six guests in the end-to-end tests would only show the same function at work
/// (the end-to-end test shows the per-host limit with three).
/// </summary>
public sealed class MigrationAdmissionTests
{
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private readonly List<VirtualMachineMigration> _all = [];
    private readonly List<(ObjectKey Key, string Source)> _admitted = [];
    private readonly Dictionary<string, string> _vmHost = [];

    [Fact]
    public void A_sixth_migration_waits_while_five_run_in_the_cluster_and_starts_when_one_ends()
    {
        for (var i = 1; i <= 5; i++)
        {
            Running($"m{i}", $"h{i}");
        }
        var sixth = Queued("m6", "h6");

        Assert.Equal("queued: 5 migrations run in the cluster (limit 5)", Blocked(sixth));

        Finish("m3");
        Assert.Null(Blocked(sixth));
    }

    [Fact]
    public void Under_the_cluster_limit_the_queue_keeps_its_order()
    {
        for (var i = 1; i <= 4; i++)
        {
            Running($"m{i}", $"h{i}");
        }
        var older = Queued("older", "h5");
        var younger = Queued("younger", "h6");

        Assert.Null(Blocked(older));
        Assert.Equal("queued: 5 migrations run in the cluster (limit 5)", Blocked(younger));
    }

    [Fact]
    public void A_migration_held_back_by_its_own_host_lets_younger_ones_from_other_hosts_pass()
    {
        Running("a1", "h1");
        Running("a2", "h1");
        var fromFullHost = Queued("a3", "h1");
        var fromOtherHost = Queued("b1", "h2");

        Assert.Equal("queued: 2 outgoing migrations run from host h1 (limit 2)", Blocked(fromFullHost));
        Assert.Null(Blocked(fromOtherHost));
    }

    [Fact]
    public void A_previous_operators_active_migration_still_holds_its_slot()
    {
        Running("mine", "h1");
        // Active in the API, not driven by this process: a restarted operator has yet to settle it.
        _all.Add(Migration("inherited", "Running", "h1", 0));
        var next = Queued("next", "h1");

        Assert.Equal("queued: 2 outgoing migrations run from host h1 (limit 2)", Blocked(next));
    }

    [Fact]
    public void A_queued_migration_whose_vm_is_not_placed_takes_no_slot()
    {
        for (var i = 1; i <= 4; i++)
        {
            Running($"m{i}", $"h{i}");
        }
        var unplaced = Migration("unplaced", null, null, _all.Count);
        _all.Add(unplaced);
        var next = Queued("next", "h6");

        Assert.Null(Blocked(next));
    }

    private string? Blocked(VirtualMachineMigration me) =>
        MigrationAdmission.Blocked(_all, _admitted, q => _vmHost.GetValueOrDefault(q.VmName), ObjectKey.Of(me));

    private void Running(string name, string host)
    {
        var m = Migration(name, "Running", host, _all.Count);
        _all.Add(m);
        _vmHost[m.VmName] = host;
        _admitted.Add((ObjectKey.Of(m), host));
    }

    private VirtualMachineMigration Queued(string name, string host)
    {
        var m = Migration(name, "Pending", null, _all.Count);
        _all.Add(m);
        _vmHost[m.VmName] = host;
        return m;
    }

    private void Finish(string name)
    {
        var m = _all.Single(x => x.Name == name);
        m.Status!["phase"] = "Succeeded";
        _admitted.RemoveAll(a => a.Key == ObjectKey.Of(m));
    }

    private static VirtualMachineMigration Migration(string name, string? phase, string? source, int order)
    {
        var status = new JsonObject();
        if (phase is not null)
        {
            status["phase"] = phase;
        }
        if (source is not null)
        {
            status["sourceHost"] = source;
        }
        return new VirtualMachineMigration
        {
            Metadata = new() { Name = name, NamespaceProperty = "ns", CreationTimestamp = T0.AddSeconds(order) },
            Spec = new JsonObject { ["vmName"] = "vm-" + name },
            Status = status,
        };
    }
}
