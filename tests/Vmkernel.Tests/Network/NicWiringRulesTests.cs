using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Network;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>The rules of NICs on port groups that need no kernel: derived names, validation, console reports, MTU.</summary>
public sealed class NicWiringRulesTests : IDisposable
{
    private readonly TempStateDirectory _state = new();

    public void Dispose() => _state.Dispose();

    private static VmSpec Vm(params NicSpec[] nics) => new()
    {
        Name = "web1",
        Boot = new BootSpec { Kernel = "/bin/sh" },
        Nics = nics,
    };

    private IReadOnlyList<string> Errors(VmSpec spec) =>
        VmSpecValidator.Validate(HostNetwork.Normalize(spec), VmPaths.For(_state.Path, spec.Name), 1L << 34);

    [Fact]
    public void A_nic_on_a_port_group_gets_a_tap_and_a_mac_stable_per_vm_and_nic()
    {
        var spec = HostNetwork.Normalize(Vm(new NicSpec { Name = "eth0", PortGroup = "web" }, new NicSpec { Name = "eth1", PortGroup = "db", Mac = "52:54:00:AA:BB:CC" }));

        Assert.Equal(DeviceNames.Tap("web1", "eth0"), spec.Nics[0].Tap);
        Assert.Equal(DeviceNames.Mac("web1", "eth0"), spec.Nics[0].Mac);
        Assert.Equal("52:54:00:aa:bb:cc", spec.Nics[1].Mac); // given: kept
        Assert.NotEqual(spec.Nics[0].Mac, HostNetwork.Normalize(Vm(new NicSpec { Name = "eth1", PortGroup = "web" })).Nics[0].Mac);
        Assert.Same(spec, HostNetwork.Normalize(spec)); // normalising twice changes nothing
        Assert.Equal(spec.Nics, HostNetwork.Normalize(Vm(new NicSpec { Name = "eth0", PortGroup = "web" }, new NicSpec { Name = "eth1", PortGroup = "db", Mac = "52:54:00:aa:bb:cc" })).Nics);
        Assert.Empty(Errors(spec));
    }

    [Fact]
    public void Bad_nics_are_refused_naming_the_nic()
    {
        Assert.Contains(Errors(Vm(new NicSpec { Name = "eth0" })), e => e.StartsWith("nic 'eth0': give a port group, or the name of a tap", StringComparison.Ordinal));
        Assert.Contains(Errors(Vm(new NicSpec { Name = "eth0", PortGroup = "web" }, new NicSpec { Name = "eth0", PortGroup = "db" })),
            e => e == "nics: two NICs are named 'eth0'");
        Assert.Contains(Errors(Vm(new NicSpec { Name = "eth0", PortGroup = "web", Tap = "mytap0" })),
            e => e.Contains("gets its tap from the vSwitch", StringComparison.Ordinal));
        Assert.Contains(Errors(Vm(new NicSpec { Name = "eth0", PortGroup = "web", Mac = "01:00:5e:00:00:01" })),
            e => e.Contains("multicast", StringComparison.Ordinal));
        Assert.Contains(Errors(Vm(new NicSpec { Name = "eth0", PortGroup = "web", Mac = "52:54:00:00:00:01" }, new NicSpec { Name = "eth1", PortGroup = "web", Mac = "52:54:00:00:00:01" })),
            e => e.StartsWith("nic 'eth1': MAC 52:54:00:00:00:01 is already", StringComparison.Ordinal));
        Assert.Contains(Errors(Vm(new NicSpec { Name = "eth0", PortGroup = "web", Mac = "52-54-00-00-00-01" })),
            e => e.StartsWith("nic 'eth0': MAC '52-54-00-00-00-01' is not of the form", StringComparison.Ordinal));
        Assert.Empty(Errors(Vm(new NicSpec { Name = "eth0", Tap = "mytap0", Mac = "52:54:00:00:00:01" }))); // a tap of the caller's own
    }

    [Fact]
    public void The_guests_console_reports_give_the_last_address_per_interface()
    {
        var console = Encoding.UTF8.GetBytes(
            "VMK-GUEST-UP 0.91\nVMK-GUEST-IP 10.1.0.10\nVMK-TICK 1\nnoiseVMK-GUEST-IP 10.2.0.5 eth0.100\r\nVMK-GUEST-IP 10.1.0.11\nVMK-GUEST-IP garbage\nVMK-GUEST-IP 10.1.0.");

        var reports = HostNetwork.ConsoleReports(console).OrderBy(r => r.Interface, StringComparer.Ordinal).ToList();

        Assert.Equal([("eth0", "10.1.0.11"), ("eth0.100", "10.2.0.5")], reports);
        Assert.Empty(HostNetwork.ConsoleReports(null));
    }

    [Fact]
    public void A_derived_vni_is_stable_and_in_range()
    {
        Assert.Equal(DeviceNames.Vni("web"), DeviceNames.Vni("web"));
        Assert.NotEqual(DeviceNames.Vni("web"), DeviceNames.Vni("db"));
        Assert.All(Enumerable.Range(0, 500).Select(i => DeviceNames.Vni($"pg{i}")), v => Assert.InRange(v, 1, 16777215));
    }

    [Fact]
    public async Task A_segment_mtu_the_underlay_cannot_carry_is_refused_before_anything_is_built()
    {
        var runner = new ScriptedRunner();
        var sw = VSwitch.Open(_state.Path, runner, NullLogger.Instance);
        PortGroupSpec Spec(int? mtu) => new()
        {
            Name = "overlay",
            Mtu = mtu,
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 7, Local = "192.0.2.1" }),
        };

        var e = await Assert.ThrowsAsync<VmkernelException>(() => sw.ApplyAsync(Spec(1500)));
        Assert.Contains("mtu: 1500 is more than the uplink carries without fragmenting (1450", e.Message);
        Assert.Empty(runner.Writes);
        Assert.Empty(sw.PortGroups);

        Assert.Contains("mtu: 100 is outside 576-9000", PortGroupValidator.Validate(Spec(100), []).Single());

        var record = await sw.ApplyAsync(Spec(1400));
        Assert.Equal(1400, record.Mtu);
        Assert.Contains($"ip link set {record.Bridge} mtu 1400", runner.Writes);
    }
}
