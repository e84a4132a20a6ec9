using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>The exact requests a new port group issues, per uplink kind, checked as data.</summary>
public sealed class UplinkRequestTests : IDisposable
{
    private readonly TempStateDirectory _state = new();
    private readonly ScriptedRunner _runner = new();

    public void Dispose() => _state.Dispose();

    private VSwitch Open() => VSwitch.Open(_state.Path, _runner, NullLogger.Instance);

    [Fact]
    public async Task Vlan_uplink_creates_an_8021q_subinterface_of_the_nic_then_the_bridge()
    {
        await Open().ApplyAsync(new PortGroupSpec { Name = "prod", VlanId = 10, Uplink = UplinkSpec.OnNic("eth0") });

        var br = DeviceNames.Bridge("prod");
        var vl = DeviceNames.Vlan("prod");
        var t = DeviceNames.NftTable("prod");
        var mac = DeviceNames.Mac("bridge/prod", "");
        Assert.Equal(
        [
            $"ip link add link eth0 name {vl} type vlan id 10",
            $"ip link add {br} type bridge",
            $"ip link set {br} address {mac}",
            $"ip link set {br} mtu 1500",
            $"ip link set {vl} mtu 1500",
            $"ip link set {vl} master {br}",
            $"ip link set {vl} up",
            $"ip link set {br} up",
            "nft -f -",
        ], _runner.Writes);
        var nft = _runner.Requests.Single(r => r.Program == "nft" && !r.IsRead);
        Assert.Contains($"table bridge {t} {{", nft.Stdin);
    }

    [Fact]
    public async Task Vlan_on_a_kernel_without_8021q_names_the_missing_feature_and_builds_nothing()
    {
        _runner.Fail = r => r.Args.Contains("vlan") ? new CommandResult(2, "", "Error: Unknown device type.") : null;
        var sw = Open();

        var e = await Assert.ThrowsAsync<VmkernelException>(() =>
            sw.ApplyAsync(new PortGroupSpec { Name = "prod", VlanId = 10, Uplink = UplinkSpec.OnNic("eth0") }));

        Assert.Contains("802.1Q", e.Message);
        Assert.Contains("8021q", e.Message);
        Assert.Contains("vlanId", e.Message);
        Assert.DoesNotContain(_runner.Writes, w => w.Contains("type bridge") || w.StartsWith("nft", StringComparison.Ordinal) || w.StartsWith("dnsmasq", StringComparison.Ordinal));
        Assert.Empty(sw.PortGroups);
        Assert.False(File.Exists(sw.Paths.Record("prod")));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4095)]
    public async Task Untagged_and_trunk_put_the_nic_itself_into_the_bridge(int vlan)
    {
        await Open().ApplyAsync(new PortGroupSpec { Name = "raw", VlanId = vlan, Uplink = UplinkSpec.OnNic("eth0") });

        var br = DeviceNames.Bridge("raw");
        Assert.DoesNotContain(_runner.Writes, w => w.Contains("type vlan"));
        Assert.Contains($"ip link set eth0 master {br}", _runner.Writes);
        Assert.DoesNotContain(_runner.Writes, w => w.StartsWith("ip link set eth0 mtu", StringComparison.Ordinal)); // never touch the NIC's MTU
    }

    [Fact]
    public async Task Vxlan_uplink_on_the_device_holding_the_local_address_with_one_flood_entry_per_peer_and_mtu_minus_50()
    {
        await Open().ApplyAsync(new PortGroupSpec
        {
            Name = "overlay",
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 4242, Local = "192.0.2.1", Peers = ["192.0.2.2", "192.0.2.3"] }),
            Ipam = new IpamSpec { Subnet = "10.42.0.0/24", Gateway = "10.42.0.1", RangeStart = "10.42.0.10", RangeEnd = "10.42.0.99" },
        });

        var br = DeviceNames.Bridge("overlay");
        var vx = DeviceNames.Vxlan("overlay");
        var writes = _runner.Writes.ToList();
        Assert.Equal($"ip link add {vx} type vxlan id 4242 local 192.0.2.1 dstport 4789 dev eth0", writes[0]);
        Assert.Contains($"ip link set {br} mtu 1450", writes);
        Assert.Contains($"ip link set {vx} mtu 1450", writes);
        Assert.Contains($"bridge fdb append 00:00:00:00:00:00 dev {vx} dst 192.0.2.2", writes);
        Assert.Contains($"bridge fdb append 00:00:00:00:00:00 dev {vx} dst 192.0.2.3", writes);
        // Three hosts: this one (192.0.2.1) is the first, so it serves the first third of the range and takes .254.
        Assert.Contains($"ip addr add 10.42.0.254/24 dev {br}", writes);
        var dnsmasq = Assert.Single(_runner.Requests, r => r.Program == "dnsmasq");
        Assert.Contains("--dhcp-range=10.42.0.10,10.42.0.39,255.255.255.0,3600", dnsmasq.Args);
        Assert.Contains("--dhcp-option=option:mtu,1450", dnsmasq.Args);
        Assert.Contains($"--interface={br}", dnsmasq.Args);
        Assert.Contains("--bind-interfaces", dnsmasq.Args);
        var nft = _runner.Requests.Single(r => r.Program == "nft" && !r.IsRead);
        Assert.Contains($"iifname \"{vx}\" udp dport {{ 67, 68 }} drop", nft.Stdin);
        Assert.Contains($"oifname \"{vx}\" udp dport {{ 67, 68 }} drop", nft.Stdin);
    }

    [Fact]
    public async Task Vxlan_without_the_vxlan_module_names_it()
    {
        _runner.Fail = r => r.Args.Contains("vxlan") && !r.IsRead ? new CommandResult(2, "", "Error: Unknown device type.") : null;
        var sw = Open();
        var e = await Assert.ThrowsAsync<VmkernelException>(() => sw.ApplyAsync(new PortGroupSpec
        {
            Name = "overlay",
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 1, Local = "192.0.2.1" }),
        }));
        Assert.Contains("module vxlan", e.Message);
        Assert.Empty(sw.PortGroups);
    }

    [Fact]
    public async Task Internal_port_group_has_a_bridge_and_nothing_else()
    {
        await Open().ApplyAsync(new PortGroupSpec { Name = "lab" });
        Assert.DoesNotContain(_runner.Writes, w => w.Contains("master") || w.StartsWith("dnsmasq", StringComparison.Ordinal) || w.Contains("addr add"));
    }

    [Fact]
    public async Task A_tap_joins_the_bridge_with_the_segment_mtu_shaping_and_its_mac_in_the_policy()
    {
        var sw = Open();
        await sw.ApplyAsync(new PortGroupSpec
        {
            Name = "web",
            Security = new SecurityPolicy { ForgedTransmits = PolicyAction.Reject },
            Shaping = new TrafficShaping { AverageKbps = 8000, PeakKbps = 16000, BurstKB = 64 },
        });
        _runner.Requests.Clear();

        var nic = await sw.CreateTapAsync("vm1", "eth0", "web");

        var tap = DeviceNames.Tap("vm1", "eth0");
        Assert.Equal(tap, nic.Tap);
        Assert.Equal(DeviceNames.Mac("vm1", "eth0"), nic.Mac);
        Assert.True(tap.Length <= 15);
        Assert.Equal(
        [
            $"ip tuntap add dev {tap} mode tap",
            $"ip link set {tap} mtu 1500",
            $"ip link set {tap} master {DeviceNames.Bridge("web")}",
            $"ip link set {tap} up",
            $"tc qdisc replace dev {tap} root tbf rate 8000kbit burst 65536 latency 50ms peakrate 16000kbit mtu 2048",
            "nft -f -",
        ], _runner.Writes);
        var rules = _runner.Requests.Single(r => r.Program == "nft").Stdin!;
        Assert.Contains($"iifname \"{tap}\" ether saddr != {nic.Mac} drop", rules);
        Assert.Contains($"iifname \"{tap}\" limit rate over 1000000 bytes/second burst 65536 bytes drop", rules);
        Assert.Contains($"oifname \"{tap}\" ether daddr != {nic.Mac}", rules); // promiscuous Reject by default
    }

    [Fact]
    public async Task Removing_a_port_group_in_use_is_refused_and_names_the_vms()
    {
        var sw = Open();
        await sw.ApplyAsync(new PortGroupSpec { Name = "web" });
        await sw.CreateTapAsync("vm1", "eth0", "web");
        _runner.Requests.Clear();

        var e = await Assert.ThrowsAsync<VmkernelException>(() => sw.RemoveAsync("web"));

        Assert.Contains("in use by VMs vm1", e.Message);
        Assert.Empty(_runner.Writes);
        Assert.NotNull(sw.Find("web"));
    }

    [Fact]
    public async Task Records_survive_a_restart_of_the_vswitch()
    {
        var sw = Open();
        await sw.ApplyAsync(new PortGroupSpec { Name = "web", VlanId = 4095 });
        await sw.CreateTapAsync("vm1", "eth0", "web", "52:54:00:aa:bb:cc");

        var again = Open();

        var record = Assert.Single(again.PortGroups);
        Assert.Equal(4095, record.Spec.VlanId);
        Assert.Equal("52:54:00:aa:bb:cc", Assert.Single(record.Ports).Mac);
    }
}
