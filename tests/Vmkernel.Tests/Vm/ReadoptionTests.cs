using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Vm;

/// <summary>A VMkernel restart never stops a VM: the next instance finds it and controls it.</summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class ReadoptionTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(90);
    private readonly VmHostFixture _fixture = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _fixture.DisposeAsync();

    [Fact]
    public async Task A_new_vmkernel_adopts_a_running_vm_and_can_control_it()
    {
        int pid;
        await using (var first = await _fixture.OpenAsync())
        {
            var vm = await first.DefineAsync(TestGuest.Spec("adopt"));
            await vm.StartAsync();
            await vm.Console!.WaitForLineAsync(l => l.StartsWith("VMK-GUEST-UP", StringComparison.Ordinal), new CancellationTokenSource(Boot).Token);
            pid = vm.Pid!.Value;
        }

        await using var second = await _fixture.OpenAsync();
        var adopted = second.Get("adopt");

        Assert.Equal(VmState.Running, adopted.State);
        Assert.Equal(pid, adopted.Pid);
        using (var live = adopted.Console!.Subscribe(replayHistory: false))
        {
            await live.Output.ReadAsync(new CancellationTokenSource(Boot).Token); // the guest's ticks reach the new console
        }
        await adopted.PauseAsync();
        Assert.Equal("paused", await adopted.Qmp!.QueryStatusAsync());
        await adopted.StopAsync();
        Assert.Equal(VmState.Stopped, adopted.State);
        Assert.Empty(_fixture.QemuPids());
    }

    [Fact]
    public async Task A_vm_whose_qemu_died_while_nobody_watched_is_failed_not_hung()
    {
        await using (var first = await _fixture.OpenAsync())
        {
            var vm = await first.DefineAsync(TestGuest.Spec("orphan"));
            await vm.StartAsync();
        }
        foreach (var pid in _fixture.QemuPids())
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            p.Kill();
            await p.WaitForExitAsync();
        }

        await using var second = await _fixture.OpenAsync();
        var vm2 = second.Get("orphan");

        Assert.Equal(VmState.Failed, vm2.State);
        Assert.Contains("no VMkernel was watching", vm2.Status.Reason, StringComparison.Ordinal);
        await vm2.StartAsync(); // a failed VM can be started again
        Assert.Equal(VmState.Running, vm2.State);
        await vm2.StopAsync();
    }

    [Fact]
    public async Task A_stopped_vm_stays_stopped_across_a_restart()
    {
        await using (var first = await _fixture.OpenAsync())
        {
            var vm = await first.DefineAsync(TestGuest.Spec("stays-off"));
            await vm.StartAsync();
            await vm.StopAsync();
        }

        await using var second = await _fixture.OpenAsync();

        Assert.Equal(VmState.Stopped, second.Get("stays-off").State);
    }
}
