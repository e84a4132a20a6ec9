using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>A real guest driven through the API: power operations, the watch stream and the console.</summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class VmLifecycleTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(60);
    private readonly TestHost _host = new();
    private DaemonClient _client = null!;

    public async Task InitializeAsync() => _client = _host.Connect(await _host.StartDaemonAsync());

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _host.DisposeAsync();
    }

    [Fact]
    public async Task A_vm_runs_through_its_lifecycle_and_watchers_see_every_change()
    {
        using var watch = new VmWatcher(_client);
        await watch.WaitForAsync(e => e.Type == VmEventType.Synced, Quick);

        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("life") });
        await watch.WaitForAsync(e => e.Type == VmEventType.Defined && e.Vm.Spec.Name == "life", Quick);
        var started = await _client.Vms.StartAsync(new VmRef { Name = "life" });
        Assert.Equal(VmState.Running, started.Status.State);
        Assert.True(started.Status.QemuPid > 0);
        Assert.Equal([started.Status.QemuPid], _host.QemuPids());
        await watch.WaitForAsync(e => e.Type == VmEventType.Changed && e.Vm.Status.State == VmState.Starting, Quick);
        await watch.WaitForAsync(e => e.Type == VmEventType.Changed && e.Vm.Status.State == VmState.Running, Quick);

        using var console = await ConsoleReader.AttachAsync(_client, "life", replayHistory: true);
        await console.WaitForLineAsync(l => l.StartsWith("VMK-GUEST-UP", StringComparison.Ordinal), Boot);
        await console.Call.RequestStream.WriteAsync(new ConsoleInput { Data = Google.Protobuf.ByteString.CopyFromUtf8("\n") });

        Assert.Equal(VmState.Paused, (await _client.Vms.PauseAsync(new VmRef { Name = "life" })).Status.State);
        await watch.WaitForAsync(e => e.Type == VmEventType.Changed && e.Vm.Status.State == VmState.Paused, Quick);
        Assert.Equal(VmState.Running, (await _client.Vms.ResumeAsync(new VmRef { Name = "life" })).Status.State);
        await console.WaitForLineAsync(l => l.StartsWith("VMK-TICK", StringComparison.Ordinal), Boot);

        await _client.Vms.ResetAsync(new VmRef { Name = "life" });
        await console.WaitForLineAsync(l => l.StartsWith("VMK-GUEST-UP", StringComparison.Ordinal), Boot); // it booted again

        var off = await _client.Vms.ShutdownAsync(new ShutdownVmRequest { Name = "life", TimeoutSeconds = 60 });
        Assert.Equal(VmState.Stopped, off.Status.State);
        Assert.Equal(0, off.Status.QemuPid);
        Assert.Equal(StatusCode.OK, await console.ReadToEndAsync(Quick)); // the console ends with the VM
        await watch.WaitForAsync(e => e.Type == VmEventType.Changed && e.Vm.Status.State == VmState.Stopped, Quick);

        await _client.Vms.DeleteAsync(new VmRef { Name = "life" });
        await watch.WaitForAsync(e => e.Type == VmEventType.Deleted && e.Vm.Spec.Name == "life", Quick);
        Assert.Empty(_host.QemuPids());
    }

    [Fact]
    public async Task Streams_cancelled_mid_way_leave_the_vm_running_and_nothing_behind()
    {
        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("streams") });
        var pid = (await _client.Vms.StartAsync(new VmRef { Name = "streams" })).Status.QemuPid;

        for (var i = 0; i < 3; i++)
        {
            using var cancel = new CancellationTokenSource();
            using var console = await ConsoleReader.AttachAsync(_client, "streams", replayHistory: true, cancel.Token);
            using var watch = new VmWatcher(_client, "streams");
            await watch.WaitForAsync(e => e.Type == VmEventType.Existing && e.Vm.Status.State == VmState.Running, Quick);
            await console.WaitForLineAsync(l => l.Length > 0, Boot);
            await cancel.CancelAsync();
        }

        var vm = await _client.Vms.GetAsync(new VmRef { Name = "streams" });
        Assert.Equal(VmState.Running, vm.Status.State);
        Assert.Equal(pid, vm.Status.QemuPid);
        Assert.Equal([pid], _host.QemuPids());
        using (var console = await ConsoleReader.AttachAsync(_client, "streams", replayHistory: false))
        {
            await console.WaitForLineAsync(l => l.StartsWith("VMK-", StringComparison.Ordinal), Boot); // still live for a new console
        }
        await _client.Vms.StopAsync(new VmRef { Name = "streams" });
        Assert.Empty(_host.QemuPids());
    }

    [Fact]
    public async Task Reservations_beyond_what_the_host_has_left_are_resource_exhausted()
    {
        var info = await _client.Host.GetInfoAsync(new GetHostInfoRequest());
        var share = info.Allocatable.CpuMillicores * 2 / 3;
        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("first", s => s.Cpu = new CpuSpec { ReservationMillicores = share }) });
        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("second", s => s.Cpu = new CpuSpec { ReservationMillicores = share }) });

        await _client.Vms.StartAsync(new VmRef { Name = "first" });
        var e = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.StartAsync(new VmRef { Name = "second" }));
        var after = await _client.Host.GetInfoAsync(new GetHostInfoRequest());

        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("CPU is short", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(VmState.Stopped, (await _client.Vms.GetAsync(new VmRef { Name = "second" })).Status.State);
        Assert.Single(_host.QemuPids());
        Assert.Equal(share, after.Allocated.CpuMillicores);
        Assert.Equal(1, after.VmsByState["Running"]);

        await _client.Vms.StopAsync(new VmRef { Name = "first" });
        await _client.Vms.StartAsync(new VmRef { Name = "second" }); // the reservation was given back
        await _client.Vms.StopAsync(new VmRef { Name = "second" });
        Assert.Empty(_host.QemuPids());
    }
}
