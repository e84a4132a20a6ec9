using k8s;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>A PortGroup realized on the host by the operator, a guest on it that gets an address, and a deletion that waits for its VMs.</summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class PortGroupTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(150);
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(60);
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync();

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_guest_on_a_port_group_gets_an_address_and_the_port_group_stays_while_it_is_used()
    {
        var node = await _cluster.StartHostAsync("h1-" + Guid.NewGuid().ToString("N")[..4]);
        await using var op = _cluster.StartOperator();
        const string ns = "net";
        await _cluster.EnsureNamespaceAsync(ns);
        var subnet = Random.Shared.Next(32, 60);
        var pgName = "pg" + Guid.NewGuid().ToString("N")[..4];
        await _cluster.ApplyPortGroupAsync(pgName, subnet);
        var pg = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<PortGroup>(PortGroup.Plural, pgName),
            p => TestCluster.Condition(p, "Ready", "status") == "True", Quick, "PortGroup Ready", p => p?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Equal([node.Name], pg!.RealizedHosts);

        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("client", s => s["nics"] = new System.Text.Json.Nodes.JsonArray(
            new System.Text.Json.Nodes.JsonObject { ["name"] = "eth0", ["portGroup"] = pgName })));
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "client"),
            v => v?.Phase == "Running" && CustomObject.Array(v.Status, "guest", "ips").Count > 0, Boot, "VM client Running with a guest IP",
            v => v?.Status?.ToJsonString() + _cluster.Describe());
        var ip = CustomObject.Array(vm!.Status, "guest", "ips")[0]!.ToString();
        Assert.StartsWith($"10.{subnet}.88.", ip, StringComparison.Ordinal);

        using var client = _cluster.Client();
        await client.CustomObjects.DeleteClusterCustomObjectAsync("vmkernel.io", "v1alpha1", "portgroups", pgName);
        var held = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<PortGroup>(PortGroup.Plural, pgName),
            p => TestCluster.Condition(p, "Ready", "reason") == "InUse", Quick, "PortGroup held InUse", p => p?.Status?.ToJsonString());
        Assert.Contains($"{ns}/client", TestCluster.Condition(held, "Ready", "message"), StringComparison.Ordinal);

        await client.CustomObjects.DeleteNamespacedCustomObjectAsync("vmkernel.io", "v1alpha1", ns, "virtualmachines", "client");
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<PortGroup>(PortGroup.Plural, pgName), p => p is null, Quick, "PortGroup gone after its VM", p => p?.Status?.ToJsonString() + _cluster.Describe());
        var left = await new PortGroupService.PortGroupServiceClient(_cluster.Channel(node)).ListAsync(new ListPortGroupsRequest());
        Assert.DoesNotContain(left.PortGroups, p => p.Name == pgName);
    }
}
