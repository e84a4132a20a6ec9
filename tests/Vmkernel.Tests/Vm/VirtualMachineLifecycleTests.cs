using System.Text;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Vm;

/// <summary>Real QEMU, real test guest: what a user sees on the console and in the VM's state.</summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class VirtualMachineLifecycleTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(90);
    private readonly VmHostFixture _fixture = new();
    private VmkernelHost _host = null!;

    public async Task InitializeAsync() => _host = await _fixture.OpenAsync();

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _fixture.DisposeAsync();
    }

    private async Task<VirtualMachine> BootAsync(string name, Func<VmSpec, VmSpec>? change = null)
    {
        var vm = await _host.DefineAsync(TestGuest.Spec(name, change));
        await vm.StartAsync();
        await WaitForLineAsync(vm, "VMK-GUEST-UP");
        return vm;
    }

    private static async Task<string> WaitForLineAsync(VirtualMachine vm, string prefix, ConsoleSubscription? from = null)
    {
        using var cts = new CancellationTokenSource(Boot);
        if (from is null)
        {
            return await vm.Console!.WaitForLineAsync(l => l.StartsWith(prefix, StringComparison.Ordinal), cts.Token);
        }
        return await ReadLinesAsync(from, cts.Token).FirstAsync(l => l.StartsWith(prefix, StringComparison.Ordinal), cts.Token);
    }

    private static async IAsyncEnumerable<string> ReadLinesAsync(ConsoleSubscription sub, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var pending = new StringBuilder();
        await foreach (var chunk in sub.Output.ReadAllAsync(ct))
        {
            pending.Append(Encoding.UTF8.GetString(chunk.Span));
            var text = pending.ToString();
            var lines = text.Split('\n');
            pending.Clear().Append(lines[^1]);
            foreach (var line in lines[..^1])
            {
                yield return line.TrimEnd('\r');
            }
        }
    }

    private static int TickNumber(string line) => int.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task The_test_guest_boots_and_ticks_on_the_serial_console()
    {
        var vm = await BootAsync("boot");

        Assert.Equal(VmState.Running, vm.State);
        var first = TickNumber(await WaitForLineAsync(vm, "VMK-TICK 1"));
        using var live = vm.Console!.Subscribe(replayHistory: false);
        var later = TickNumber(await WaitForLineAsync(vm, "VMK-TICK", live));
        Assert.True(later > first, $"ticks should advance, saw {first} then {later}");
    }

    [Fact]
    public async Task Pause_stops_the_ticks_and_resume_brings_them_back()
    {
        var vm = await BootAsync("pause");
        await WaitForLineAsync(vm, "VMK-TICK");

        await vm.PauseAsync();
        Assert.Equal(VmState.Paused, vm.State);
        Assert.Equal("paused", await vm.Qmp!.QueryStatusAsync());
        using (var whilePaused = vm.Console!.Subscribe(replayHistory: false))
        {
            // An observation window, not synchronisation: a running guest ticks every second, a paused one never.
            using var window = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            string? tick = null;
            try
            {
                tick = await ReadLinesAsync(whilePaused, window.Token).FirstAsync(l => l.StartsWith("VMK-TICK", StringComparison.Ordinal), window.Token);
            }
            catch (OperationCanceledException)
            {
            }
            Assert.Null(tick);
        }

        using var afterResume = vm.Console.Subscribe(replayHistory: false);
        await vm.ResumeAsync();
        Assert.Equal(VmState.Running, vm.State);
        await WaitForLineAsync(vm, "VMK-TICK", afterResume);
    }

    [Fact]
    public async Task Reset_reboots_the_guest()
    {
        var vm = await BootAsync("reset");
        using var afterReset = vm.Console!.Subscribe(replayHistory: false);

        await vm.ResetAsync();

        await WaitForLineAsync(vm, "VMK-GUEST-UP", afterReset);
        Assert.Equal(VmState.Running, vm.State);
    }

    [Fact]
    public async Task Shutdown_powers_the_guest_off_and_leaves_no_qemu()
    {
        var vm = await BootAsync("shutdown");

        await vm.ShutdownAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(VmState.Stopped, vm.State);
        Assert.Empty(_fixture.QemuPids());
    }

    [Fact]
    public async Task Stop_forces_the_vm_off_and_it_can_start_again()
    {
        var vm = await BootAsync("restart");

        await vm.StopAsync();
        Assert.Equal(VmState.Stopped, vm.State);
        Assert.Empty(_fixture.QemuPids());

        await vm.StartAsync();
        await WaitForLineAsync(vm, "VMK-GUEST-UP");
        Assert.Equal(VmState.Running, vm.State);
    }

    [Fact]
    public async Task Qemu_killed_behind_the_vmkernels_back_makes_the_vm_failed_with_a_reason()
    {
        var vm = await BootAsync("killed");
        var pid = vm.Pid!.Value;

        System.Diagnostics.Process.GetProcessById(pid).Kill();

        var status = await vm.WaitForStateAsync(VmState.Failed, new CancellationTokenSource(Boot).Token);
        Assert.Contains("exited unexpectedly", status.Reason, StringComparison.Ordinal);
        Assert.Null(vm.Pid);
    }

    [Fact]
    public async Task Qemu_runs_in_the_vms_own_cgroup()
    {
        var vm = await BootAsync("cgroup");

        var cgroups = await File.ReadAllTextAsync($"/proc/{vm.Pid}/cgroup");

        Assert.Contains("cgroup", cgroups, StringComparison.Ordinal);
        Assert.Contains(vm.Name, cgroups, StringComparison.Ordinal);
    }
}
