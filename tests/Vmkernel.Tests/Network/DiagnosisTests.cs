using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>`vmctl net diagnose` answers from the kernel's state: two hosts, one VXLAN port group, VM ports as taps.</summary>
public sealed class DiagnosisTests : IAsyncLifetime
{
    private readonly TempStateDirectory _stateA = new();
    private readonly TempStateDirectory _stateB = new();
    private NetworkLab _lab = null!;
    private VSwitch _a = null!;
    private VSwitch _b = null!;

    public async Task InitializeAsync()
    {
        _lab = await NetworkLab.CreateAsync(hosts: 2);
        _a = VSwitch.Open(_stateA.Path, new ProcessCommandRunner(_lab.Hosts[0].Namespace), NullLogger.Instance);
        _b = VSwitch.Open(_stateB.Path, new ProcessCommandRunner(_lab.Hosts[1].Namespace), NullLogger.Instance);
    }

    public async Task DisposeAsync()
    {
        await _lab.DisposeAsync();
        _stateA.Dispose();
        _stateB.Dispose();
    }

    private PortGroupSpec Spec(LabHost local, params string[] peers) => new()
    {
        Name = "web",
        Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 900, Local = local.Address, Peers = peers }),
        Ipam = new IpamSpec { Subnet = "10.90.0.0/24", Gateway = "10.90.0.1", RangeStart = "10.90.0.10", RangeEnd = "10.90.0.99" },
    };

    [Fact]
    public async Task Reports_port_state_subnet_membership_and_which_peers_are_reached()
    {
        await _a.ApplyAsync(Spec(_lab.Hosts[0], _lab.Hosts[1].Address, "172.31.255.250"));
        await _b.ApplyAsync(Spec(_lab.Hosts[1], _lab.Hosts[0].Address));
        var nic = await _a.CreateTapAsync("vm1", "eth0", "web");
        var inspector = new PortGroupInspector(_a);

        // VM not running: the tap exists but nobody holds it.
        var stopped = Assert.Single(await inspector.DiagnoseAsync("vm1", "10.80.0.5"));
        Assert.False(stopped.Port.Carrier);
        Assert.Contains(stopped.Findings, f => f.Contains("has no carrier", StringComparison.Ordinal));
        Assert.False(stopped.AddressInSubnet);
        Assert.Contains(stopped.Findings, f => f.Contains("10.80.0.5 is outside port group 'web' subnet 10.90.0.0/24", StringComparison.Ordinal));
        Assert.Contains(stopped.PortGroup.Peers, p => p.Address == _lab.Hosts[1].Address && p.Reachable);
        Assert.Contains(stopped.PortGroup.Peers, p => p.Address == "172.31.255.250" && !p.Reachable);
        Assert.Contains(stopped.Findings, f => f.Contains("VXLAN peer 172.31.255.250 does not answer", StringComparison.Ordinal));
        Assert.True(stopped.PortGroup.UplinkUp);
        Assert.True(stopped.PortGroup.DhcpRunning);

        // VM running (its side of the tap open), with a static address inside the DHCP range.
        using var vm = TapEndpoint.Open(_lab.Hosts[0].Namespace, nic.Tap);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        NicDiagnosis running;
        do
        {
            running = Assert.Single(await new PortGroupInspector(_a).DiagnoseAsync("vm1", "10.90.0.20"));
        }
        while (running.Port.BridgeState != "forwarding" && DateTime.UtcNow < deadline);
        Assert.True(running.Port.Carrier);
        Assert.Equal("forwarding", running.Port.BridgeState);
        Assert.True(running.AddressInSubnet);
        Assert.Contains(running.Findings, f => f.Contains("lies inside the DHCP range", StringComparison.Ordinal));

        // The network "suddenly drops": someone took the uplink down.
        await NetworkLab.Sh($"ip -n {_lab.Hosts[0].Namespace} link set {DeviceNames.Vxlan("web")} down");
        var dropped = Assert.Single(await inspector.DiagnoseAsync("vm1"));
        Assert.Contains(dropped.Findings, f => f.Contains($"uplink {DeviceNames.Vxlan("web")} is down", StringComparison.Ordinal));

        // And re-applying the port group repairs it.
        await _a.ApplyAsync(Spec(_lab.Hosts[0], _lab.Hosts[1].Address, "172.31.255.250"));
        Assert.True((await inspector.StatusAsync("web")).UplinkUp);
    }

    [Fact]
    public async Task A_vm_without_nics_gets_a_clear_answer()
    {
        var e = await Assert.ThrowsAsync<VmkernelException>(() => new PortGroupInspector(_a).DiagnoseAsync("ghost"));
        Assert.Contains("VM 'ghost' has no NIC on any port group", e.Message);
    }
}
