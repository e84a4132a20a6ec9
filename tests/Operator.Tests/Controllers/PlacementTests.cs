using System.Text.Json.Nodes;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.Controllers.VirtualMachines;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Tests.Controllers;

/// <summary>
/// Initial placement as data: Host objects as vmkerneld writes them, VirtualMachines as a person writes them. The
/// decisions are pure functions of those objects, so no cluster is needed to see them.
/// </summary>
public sealed class PlacementTests
{
    private readonly ObjectCache<Host> _hosts = new();
    private readonly ObjectCache<VirtualMachine> _vms = new();

    private Placement NewPlacement(Func<string, string, bool>? mounted = null) =>
        new(new HostDirectory(() => _hosts), () => _vms, mounted ?? ((_, _) => true), (_, _) => true);

    private void AddHost(string name, string cpu = "2", string memory = "2Gi", string allocatedMemory = "0", Dictionary<string, string>? labels = null, string phase = "Ready")
    {
        var host = new Host
        {
            Metadata = new() { Name = name, Labels = labels },
            Spec = new JsonObject { ["endpoint"] = $"{name}:7443" },
            Status = new JsonObject
            {
                ["phase"] = phase,
                ["allocatable"] = new JsonObject { ["cpu"] = cpu, ["memory"] = memory },
                ["allocated"] = new JsonObject { ["cpu"] = "0", ["memory"] = allocatedMemory },
            },
        };
        _hosts.Set(ObjectKey.Of(host), host);
    }

    /// <summary>A VirtualMachine as the informer has it (in the cache, not placed yet).</summary>
    private VirtualMachine Vm(string name, string memory = "256Mi", string? reservation = null, JsonObject? placement = null)
    {
        var mem = new JsonObject { ["size"] = memory };
        if (reservation is not null)
        {
            mem["reservation"] = reservation;
        }
        var spec = new JsonObject { ["memory"] = mem };
        if (placement is not null)
        {
            spec["placement"] = placement;
        }
        var vm = new VirtualMachine { Metadata = new() { Name = name, NamespaceProperty = "t" }, Spec = spec };
        _vms.Set(ObjectKey.Of(vm), vm);
        return vm;
    }

    [Fact]
    public void Vms_spread_by_load_and_reservations_are_never_over_committed_even_before_the_cache_shows_them()
    {
        AddHost("h-a");
        AddHost("h-b");
        var placement = NewPlacement();

        Assert.Equal("h-a", placement.Choose(Vm("one", reservation: "1Gi")).Host); // tie: by name
        Assert.Equal("h-b", placement.Choose(Vm("two")).Host);                     // h-a carries one
        Assert.Equal("h-b", placement.Choose(Vm("three", reservation: "1536Mi")).Host); // h-a has only 1Gi unreserved
        var (host, why) = placement.Choose(Vm("four", reservation: "1536Mi"));
        Assert.Null(host);
        Assert.Contains("h-a: memory reservation 1536Mi does not fit (1024Mi of 2048Mi unreserved)", why, StringComparison.Ordinal);
        Assert.Contains("h-b: memory reservation 1536Mi does not fit (512Mi of 2048Mi unreserved)", why, StringComparison.Ordinal);
    }

    [Fact]
    public void What_the_daemon_reports_as_allocated_counts_too()
    {
        AddHost("h-a", allocatedMemory: "1792Mi");
        var (host, why) = NewPlacement().Choose(Vm("big", reservation: "512Mi"));
        Assert.Null(host);
        Assert.Contains("256Mi of 2048Mi unreserved", why, StringComparison.Ordinal);
    }

    [Fact]
    public void Selectors_readiness_and_datastores_rule_hosts_out_with_a_reason_each()
    {
        AddHost("h-a", labels: new() { ["zone"] = "a" });
        AddHost("h-b", labels: new() { ["zone"] = "b" });
        AddHost("h-c", phase: "NotReady");
        var zoneB = new JsonObject { ["hostSelector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["zone"] = "b" } } };
        Assert.Equal("h-b", NewPlacement().Choose(Vm("pinned", placement: zoneB)).Host);

        var vm = Vm("needs-ds");
        vm.Spec!["disks"] = new JsonArray(new JsonObject { ["name"] = "d", ["datastore"] = "ds1", ["size"] = "1Gi" });
        var (host, why) = NewPlacement(mounted: (ds, h) => h == "h-c").Choose(vm);
        Assert.Null(host);
        Assert.Contains("h-a: datastore ds1 is not mounted", why, StringComparison.Ordinal);
        Assert.Contains("h-c: not Ready (NotReady)", why, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_on_the_daemon_and_the_datastore_are_stable_and_distinct()
    {
        Assert.Equal(VmNames.DaemonName("a-b", "c"), VmNames.DaemonName("a-b", "c"));
        Assert.NotEqual(VmNames.DaemonName("a-b", "c"), VmNames.DaemonName("a", "b-c"));
        var longName = VmNames.DaemonName(new string('n', 63), new string('v', 200) + ".x");
        Assert.True(longName.Length <= 63);
        Assert.Matches("^[a-z0-9-]+$", longName);
        Assert.Equal("ns.vm.data", VmNames.DiskName("ns", "vm", "data"));
        Assert.Matches("^52:54:00(:[0-9a-f]{2}){3}$", VmNames.Mac("ns", "vm", "eth0"));
    }

    [Fact]
    public void A_new_vm_waits_for_a_host_still_mounting_its_datastore_and_an_old_one_does_not()
    {
        AddHost("h-a");
        AddHost("h-b");
        var mountedOnB = false;
        var placement = NewPlacement((_, host) => host == "h-a" || mountedOnB);
        VirtualMachine WithDisk(string name, DateTime created)
        {
            var vm = Vm(name);
            vm.Spec!["disks"] = new JsonArray(new JsonObject { ["name"] = "d", ["datastore"] = "ds1", ["size"] = "64Mi" });
            vm.Metadata.CreationTimestamp = created;
            return vm;
        }

        // Applied together with the Datastore: h-b has not mounted it yet, so the VM does not pile onto h-a.
        var (host, why) = placement.Choose(WithDisk("fresh", DateTime.UtcNow), out var settling);
        Assert.Null(host);
        Assert.True(settling);
        Assert.Contains("h-b", why, StringComparison.Ordinal);

        // Once h-b has it, both hosts compete as usual.
        mountedOnB = true;
        Assert.Equal("h-a", placement.Choose(WithDisk("fresh", DateTime.UtcNow), out settling).Host);
        Assert.False(settling);

        // A VM that has waited long enough is placed on what fits, not held back forever by a host that never mounts.
        mountedOnB = false;
        Assert.Equal("h-a", placement.Choose(WithDisk("old", DateTime.UtcNow - Placement.SettleTime - TimeSpan.FromSeconds(1)), out settling).Host);
        Assert.False(settling);
    }
}
