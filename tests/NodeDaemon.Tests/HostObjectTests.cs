using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Vmk.NodeDaemon.Tests;

/// <summary>vmkerneld creates and keeps its cluster-scoped Host object current, and leaves the spec to others.</summary>
public sealed class HostObjectTests(ApiServerFixture api) : IClassFixture<ApiServerFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private readonly TestHost _host = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private async Task<JsonElement> GetHostAsync(Kubernetes client) =>
        (JsonElement)await client.CustomObjects.GetClusterCustomObjectAsync("vmkernel.io", "v1alpha1", "hosts", _host.HostName);

    private static string? Heartbeat(JsonElement h) =>
        h.TryGetProperty("status", out var s) && s.TryGetProperty("heartbeat", out var hb) ? hb.GetString() : null;

    [Fact]
    public async Task The_daemon_creates_its_host_and_keeps_the_heartbeat_and_status_current()
    {
        using var client = api.Client();
        var daemon = await _host.StartDaemonAsync("--kubeconfig", api.Kubeconfig, "--report-interval", "0.5");

        var first = await Eventually.UntilAsync(() => GetHostAsync(client), h => Heartbeat(h) is not null, Deadline, "the Host object with a heartbeat");
        var status = first.GetProperty("status");
        Assert.Equal("Ready", status.GetProperty("phase").GetString());
        Assert.Equal("tcg", status.GetProperty("accelerator").GetProperty("mode").GetString());
        Assert.Contains("configuration", status.GetProperty("accelerator").GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture), status.GetProperty("capacity").GetProperty("cpu").GetString());
        Assert.EndsWith("Ki", status.GetProperty("capacity").GetProperty("memory").GetString(), StringComparison.Ordinal);
        Assert.Equal($"{Environment.ProcessorCount * 1000 - 250}m", status.GetProperty("allocatable").GetProperty("cpu").GetString());
        Assert.Equal(0, status.GetProperty("vms").GetInt32());
        var ready = status.GetProperty("conditions").EnumerateArray().Single(c => c.GetProperty("type").GetString() == "Ready");
        Assert.Equal("True", ready.GetProperty("status").GetString());
        Assert.Equal($"{_host.HostName}:{daemon.GrpcAddress.Port}", first.GetProperty("spec").GetProperty("endpoint").GetString());

        // Someone asks for maintenance and the operator reports on it in a condition of its own: the daemon's next
        // reports leave the spec and that condition alone.
        await client.CustomObjects.PatchClusterCustomObjectAsync(
            new V1Patch("""{"spec":{"maintenance":true}}""", V1Patch.PatchType.MergePatch), "vmkernel.io", "v1alpha1", "hosts", _host.HostName);
        var conditions = JsonNode.Parse(status.GetProperty("conditions").GetRawText())!.AsArray();
        conditions.Add(new JsonObject { ["type"] = "MaintenanceMode", ["status"] = "True", ["reason"] = "Empty", ["message"] = "set by the test", ["lastTransitionTime"] = "2026-01-01T00:00:00Z" });
        await client.CustomObjects.PatchClusterCustomObjectStatusAsync(
            new V1Patch(new JsonObject { ["status"] = new JsonObject { ["conditions"] = conditions } }.ToJsonString(), V1Patch.PatchType.MergePatch), "vmkernel.io", "v1alpha1", "hosts", _host.HostName);
        var later = await Eventually.UntilAsync(() => GetHostAsync(client),
            h => string.CompareOrdinal(Heartbeat(h), Heartbeat(first)) > 0, Deadline, "a later heartbeat");
        var againLater = await Eventually.UntilAsync(() => GetHostAsync(client),
            h => string.CompareOrdinal(Heartbeat(h), Heartbeat(later)) > 0, Deadline, "another heartbeat");

        Assert.True(againLater.GetProperty("spec").GetProperty("maintenance").GetBoolean());
        var transition = ready.GetProperty("lastTransitionTime").GetString();
        var readyLater = againLater.GetProperty("status").GetProperty("conditions").EnumerateArray().Single(c => c.GetProperty("type").GetString() == "Ready");
        Assert.Equal(transition, readyLater.GetProperty("lastTransitionTime").GetString()); // no flip, no new transition time
        var maintenance = againLater.GetProperty("status").GetProperty("conditions").EnumerateArray().Single(c => c.GetProperty("type").GetString() == "MaintenanceMode");
        Assert.Equal("set by the test", maintenance.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_deleted_host_object_is_recreated_and_an_unreachable_api_server_does_not_stop_the_daemon()
    {
        using var client = api.Client();
        var badKubeconfig = Path.Combine(_host.Root, "bad-kubeconfig");
        var closed = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        closed.Start();
        var closedPort = ((System.Net.IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop(); // nobody listens there now
        File.WriteAllText(badKubeconfig, System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(api.Kubeconfig), @"https://127\.0\.0\.1:\d+", $"https://127.0.0.1:{closedPort}"));
        var garbled = Path.Combine(_host.Root, "garbled-kubeconfig");
        File.WriteAllText(garbled, "this: is: not a kubeconfig");
        var lonely = await _host.StartDaemonAsync("--kubeconfig", badKubeconfig, "--report-interval", "0.5");
        using (var c = _host.Connect(lonely))
        {
            Assert.Equal(_host.HostName, (await c.Host.GetInfoAsync(new Protos.GetHostInfoRequest())).Name);
        }
        await Eventually.UntilAsync(() => Task.FromResult(lonely.Output), o => o.Contains("Cannot report Host object", StringComparison.Ordinal), Deadline, "a warning about the unreachable API server");
        await lonely.StopAsync();
        var confused = await _host.StartDaemonAsync("--kubeconfig", garbled);
        using (var c = _host.Connect(confused))
        {
            Assert.Equal(_host.HostName, (await c.Host.GetInfoAsync(new Protos.GetHostInfoRequest())).Name);
        }
        await Eventually.UntilAsync(() => Task.FromResult(confused.Output), o => o.Contains("cannot be used", StringComparison.Ordinal), Deadline, "an error about the kubeconfig");
        Assert.False(confused.HasExited);
        await confused.StopAsync();

        await _host.StartDaemonAsync("--kubeconfig", api.Kubeconfig, "--report-interval", "0.5");
        await Eventually.UntilAsync(() => GetHostAsync(client), h => Heartbeat(h) is not null, Deadline, "the Host object");
        await client.CustomObjects.DeleteClusterCustomObjectAsync("vmkernel.io", "v1alpha1", "hosts", _host.HostName);

        var recreated = await Eventually.UntilAsync(() => GetHostAsync(client), h => Heartbeat(h) is not null, Deadline, "the Host object recreated");
        Assert.Equal("Ready", recreated.GetProperty("status").GetProperty("phase").GetString());
    }
}
