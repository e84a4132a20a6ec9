using System.Net;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.VirtualMachines;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>The vm-operator binary itself, over two hosts sharing one datastore file: killed mid-reconcile, a new replica converges without duplicates.</summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class OperatorRestartTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(150);
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(60);
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync();

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task An_operator_killed_mid_reconcile_is_replaced_and_the_vm_runs_once_with_its_disks_once()
    {
        var suffix = Guid.NewGuid().ToString("N")[..4];
        var h1 = await _cluster.StartHostAsync("h1-" + suffix);
        var h2 = await _cluster.StartHostAsync("h2-" + suffix);
        await _cluster.EnsureNamespaceAsync("vmk-system");
        const string ns = "prod";
        await _cluster.EnsureNamespaceAsync(ns);
        var first = await _cluster.StartOperatorProcessAsync();
        await _cluster.ApplyDatastoreAsync("shared");
        var ds = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "shared"),
            d => CustomObject.Long(d?.Status, "mountedHosts") == 2, Quick, "Datastore shared mounted on both hosts", d => d?.Status?.ToJsonString() + first.Output);
        Assert.Equal("True", TestCluster.Condition(ds, "Ready", "status"));

        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("db", s => s["disks"] = new System.Text.Json.Nodes.JsonArray(
            new System.Text.Json.Nodes.JsonObject { ["name"] = "root", ["datastore"] = "shared", ["size"] = "32Mi" },
            new System.Text.Json.Nodes.JsonObject { ["name"] = "logs", ["datastore"] = "shared", ["size"] = "16Mi", ["thin"] = false })));
        // Killed as soon as the placement is persisted: disks, define and start are still ahead or in flight.
        var placed = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "db"), v => v?.AssignedHost is not null, Quick, "VM db placed", v => first.Output);
        await first.KillAsync();

        var second = await _cluster.StartOperatorProcessAsync();
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "db"),
            v => v?.Phase == "Running" && TestCluster.Condition(v, "Ready", "status") == "True", Boot, "VM db Running under the second operator",
            v => v?.Status?.ToJsonString() + "\n" + second.Output);
        Assert.Equal(placed!.AssignedHost, vm!.AssignedHost);

        var daemonName = VmNames.DaemonName(ns, "db");
        var onHosts = new List<string>();
        foreach (var node in new[] { h1, h2 })
        {
            onHosts.AddRange((await _cluster.Vms(node).ListAsync(new ListVmsRequest())).Vms.Select(v => $"{node.Name}/{v.Spec.Name}"));
        }
        Assert.Equal([$"{vm.AssignedHost}/{daemonName}"], onHosts);
        Assert.Single(_cluster.QemuPids());
        var disks = await _cluster.Datastores(h1).ListDisksAsync(new DatastoreRef { Name = "shared" });
        Assert.Equal([VmNames.DiskName(ns, "db", "logs"), VmNames.DiskName(ns, "db", "root")], disks.Disks.Select(d => d.Name).Order(StringComparer.Ordinal));
        var host = _cluster.Hosts[vm.AssignedHost!];
        await ConsoleReader.WaitForLineAsync(_cluster.Vms(host), daemonName, "VMK-GUEST-UP", Boot);

        // The binary's endpoints: health, and the metrics docs/packaging.md lists.
        using var http = new HttpClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(second.Address("health"), "/healthz"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(second.Address("health"), "/readyz"))).StatusCode);
        var metrics = await Eventually.UntilAsync(() => http.GetStringAsync(new Uri(second.Address("metrics"), "/metrics")),
            m => m.Contains("vmkernel_virtualmachines{phase=\"Running\"} 1", StringComparison.Ordinal), Quick, "Running VMs in /metrics");
        Assert.Contains("leader_election_master_status{name=\"vm-operator\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"vmkernel_host_heartbeat_age_seconds{{host=\"{h2.Name}\"}}", metrics, StringComparison.Ordinal);
        Assert.Contains("controller_runtime_reconcile_total{controller=\"virtualmachine\"", metrics, StringComparison.Ordinal);
        Assert.Contains("workqueue_depth{name=\"virtualmachine\"}", metrics, StringComparison.Ordinal);

        await second.TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, second.ExitCode);
        Assert.Single(_cluster.QemuPids()); // stopping the operator never stops VMs
    }

    [Fact]
    public async Task A_host_whose_daemon_stops_reporting_turns_NotReady_and_Ready_again_when_it_returns()
    {
        var node = await _cluster.StartHostAsync("h1-" + Guid.NewGuid().ToString("N")[..4], reportInterval: 0.5);
        await using var op = _cluster.StartOperator(hostGrace: TimeSpan.FromSeconds(3));
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, node.Name), h => h?.Phase == "Ready", Quick, "Host Ready");

        await node.Daemon.KillAsync();
        var stale = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, node.Name),
            h => h?.Phase == "NotReady", Quick, "Host NotReady after its daemon died", h => h?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Equal("HeartbeatStale", TestCluster.Condition(stale, "Ready", "reason"));
        Assert.Contains("last reported", TestCluster.Condition(stale, "Ready", "message"), StringComparison.Ordinal);
        Assert.Contains(await _cluster.EventsAsync("default", node.Name), e => e.Reason == "HostNotReady");

        await _cluster.StartHostAsync(node.Name, reportInterval: 0.5);
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, node.Name), h => h?.Phase == "Ready", Quick, "Host Ready again");
        // Judged again after it came back: a second death is noticed too.
        await _cluster.Hosts[node.Name].Daemon.KillAsync();
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, node.Name), h => h?.Phase == "NotReady", Quick, "Host NotReady again");
    }
}
