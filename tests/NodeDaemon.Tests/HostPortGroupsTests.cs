using System.Text.Json;
using k8s;
using Vmk.NodeDaemon.Protos;
using Net = Vmk.Vmkernel.Network;

namespace Vmk.NodeDaemon.Tests;

/// <summary>The Host object lists the port groups realized on its host (name, bridge, MTU...), in the shape crds/host.yaml accepts.</summary>
public sealed class HostPortGroupsTests(ApiServerFixture api) : IClassFixture<ApiServerFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly TestHost _host = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        // TestHost stops the daemon and QEMUs and removes the port groups left in the machine's namespace.
        await _host.DisposeAsync();
    }

    private async Task<JsonElement> GetHostAsync(Kubernetes client) =>
        (JsonElement)await client.CustomObjects.GetClusterCustomObjectAsync("vmkernel.io", "v1alpha1", "hosts", _host.HostName);

    private static IReadOnlyList<string> PortGroups(JsonElement h) =>
        h.TryGetProperty("status", out var s) && s.TryGetProperty("portGroups", out var pgs)
            ? pgs.EnumerateArray().Select(p => p.GetProperty("name").GetString()!).ToList()
            : [];

    [Fact]
    public async Task Applied_port_groups_appear_in_the_host_status_and_removed_ones_leave_it()
    {
        using var client = api.Client();
        var daemon = await _host.StartDaemonAsync("--kubeconfig", api.Kubeconfig, "--report-interval", "0.5");
        using var grpc = _host.Connect(daemon);
        var name = $"hpg-{Guid.NewGuid().ToString("N")[..6]}";

        await grpc.PortGroups.ApplyAsync(new PortGroupSpec { Name = name, UplinkType = "none" });
        var with = await Eventually.UntilAsync(() => GetHostAsync(client), h => PortGroups(h).Contains(name), Deadline, "the port group in the Host status");
        Assert.Equal("Ready", with.GetProperty("status").GetProperty("phase").GetString());
        var reported = with.GetProperty("status").GetProperty("portGroups").EnumerateArray().Single(p => p.GetProperty("name").GetString() == name);
        Assert.True(reported.GetProperty("realized").GetBoolean());
        Assert.False(string.IsNullOrEmpty(reported.GetProperty("bridge").GetString()), "the Host status should name the segment's bridge");

        await grpc.PortGroups.RemoveAsync(new PortGroupRef { Name = name });
        await Eventually.UntilAsync(() => GetHostAsync(client), h => h.TryGetProperty("status", out _) && !PortGroups(h).Contains(name), Deadline, "the port group gone from the Host status");
    }
}
