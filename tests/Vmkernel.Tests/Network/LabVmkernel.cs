using Vmk.Vmkernel.Network;
using Vmk.Vmkernel.Tests.Vm;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// The VMkernel of one lab host: its VMs' QEMUs run inside the host's namespace (a two-line nsenter wrapper
/// given as the QEMU binary, as if vmkerneld itself ran there) and its vSwitch issues every request in it. VMs
/// name their port group and the VMkernel creates and removes their taps, as in production.
/// </summary>
public sealed class LabVmkernel : IAsyncDisposable
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(240);
    private readonly VmHostFixture _fixture = new();

    private string _wrapper = "";

    private LabVmkernel(LabHost host) => Host = host;

    public LabHost Host { get; }

    public VmkernelHost Vmkernel { get; private set; } = null!;

    public VSwitch Switch { get; private set; } = null!;

    public static async Task<LabVmkernel> OpenAsync(LabHost host)
    {
        var lab = new LabVmkernel(host);
        var wrapper = Path.Combine(lab._fixture.StateDirectory, "qemu-in-netns");
        await File.WriteAllTextAsync(wrapper, $"#!/bin/sh\nexec nsenter --net=/run/netns/{host.Namespace} qemu-system-x86_64 \"$@\"\n");
        await NetworkLab.Sh($"chmod 700 {wrapper}");
        lab._wrapper = wrapper;
        await lab.ReopenAsync();
        return lab;
    }

    /// <summary>Lets go of the VMkernel (its VMs keep running) and opens a new one on the same state, as a restarted vmkerneld.</summary>
    public async Task ReopenAsync()
    {
        if (Vmkernel is not null)
        {
            await Vmkernel.DisposeAsync();
        }
        Vmkernel = await _fixture.OpenAsync(o => o with { QemuBinary = _wrapper, NetworkNamespace = Host.Namespace });
        Switch = Vmkernel.Network.Switch;
    }

    /// <summary>Pids of this host's QEMUs.</summary>
    public IReadOnlyList<int> QemuPids() => _fixture.QemuPids();

    /// <summary>Boots the test guest with one NIC on the port group and waits for the address DHCP gave it.</summary>
    public async Task<(VirtualMachine Vm, NicSpec Nic, string Address)> BootAsync(string name, string portGroup, string extraCmdline = "")
    {
        var vm = await DefineAsync(name, portGroup, extraCmdline);
        await vm.StartAsync();
        using var cts = new CancellationTokenSource(Boot);
        var line = await vm.Console!.WaitForLineAsync(l => l.Contains("VMK-GUEST-IP ", StringComparison.Ordinal) && !l.Contains("eth0.", StringComparison.Ordinal), cts.Token);
        var address = line[(line.IndexOf("VMK-GUEST-IP ", StringComparison.Ordinal) + 13)..].Trim().Split(' ')[0];
        return (vm, vm.Spec.Nics[0], address);
    }

    /// <summary>Boots the guest without waiting for DHCP (for VLAN sub-interfaces no DHCP server answers).</summary>
    public async Task<(VirtualMachine Vm, NicSpec Nic)> BootWithoutAddressAsync(string name, string portGroup, string extraCmdline)
    {
        var vm = await DefineAsync(name, portGroup, extraCmdline);
        await vm.StartAsync();
        using var cts = new CancellationTokenSource(Boot);
        await vm.Console!.WaitForLineAsync(l => l.Contains("VMK-GUEST-UP", StringComparison.Ordinal), cts.Token);
        return (vm, vm.Spec.Nics[0]);
    }

    /// <summary>Defines the test guest with one NIC, eth0, on the port group (tap and MAC derived by the VMkernel).</summary>
    public Task<VirtualMachine> DefineAsync(string name, string portGroup, string extraCmdline = "") =>
        Vmkernel.DefineAsync(TestGuest.Spec(name, s => s with
        {
            Nics = [new NicSpec { Name = "eth0", PortGroup = portGroup }],
            Boot = s.Boot with { Cmdline = (s.Boot.Cmdline + " " + extraCmdline).Trim() },
        }));

    /// <summary>Powers the VM off; its taps go with its QEMU.</summary>
    public async Task StopAsync(VirtualMachine vm)
    {
        await vm.KillAsync();
        using var cts = new CancellationTokenSource(Boot);
        await vm.WaitForAsync(s => s.State is VmState.Stopped or VmState.Failed, cts.Token);
    }

    /// <summary>Runs a command inside this host's namespace.</summary>
    public Task<string> Sh(string command, bool check = true) =>
        NetworkLab.Sh($"nsenter --net=/run/netns/{Host.Namespace} {command}", check);

    public async ValueTask DisposeAsync()
    {
        if (Vmkernel is not null)
        {
            await Vmkernel.DisposeAsync();
        }
        await _fixture.DisposeAsync();
    }
}
