using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

public sealed class PortGroupValidatorTests
{
    private static readonly IpamSpec Ipam = new() { Subnet = "10.1.0.0/24", Gateway = "10.1.0.1", RangeStart = "10.1.0.10", RangeEnd = "10.1.0.200" };

    public static TheoryData<PortGroupSpec, string> BadSpecs() => new()
    {
        { new PortGroupSpec { Name = "a", VlanId = 4096 }, "vlanId: 4096 is outside 0-4095" },
        { new PortGroupSpec { Name = "a", VlanId = -1 }, "vlanId: -1 is outside 0-4095" },
        { new PortGroupSpec { Name = "Bad_Name" }, "name: 'Bad_Name'" },
        { new PortGroupSpec { Name = "a", Uplink = new UplinkSpec { Nic = "eth0", Vxlan = new VxlanUplink { Vni = 1, Local = "10.0.0.1" } } }, "uplink: give either nic or vxlan" },
        { new PortGroupSpec { Name = "a", Uplink = UplinkSpec.OnNic("a-name-longer-than-15") }, "uplink.nic:" },
        { new PortGroupSpec { Name = "a", Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 0, Local = "10.0.0.1" }) }, "uplink.vxlan.vni: 0" },
        { new PortGroupSpec { Name = "a", Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 5, Local = "nope" }) }, "uplink.vxlan.local: 'nope'" },
        { new PortGroupSpec { Name = "a", Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 5, Local = "10.0.0.1", Peers = ["10.0.0.1"] }) }, "uplink.vxlan.peers: '10.0.0.1' is this host's own" },
        { new PortGroupSpec { Name = "a", VlanId = 10, Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 5, Local = "10.0.0.1" }) }, "vlanId: 10 needs an 802.1Q uplink" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { Subnet = "10.1.0.0/33" } }, "ipam.subnet: '10.1.0.0/33'" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { Subnet = "10.1.0.5/24" } }, "ipam.subnet: '10.1.0.5/24'" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { RangeStart = "10.2.0.10" } }, "ipam.rangeStart: 10.2.0.10 is outside ipam.subnet 10.1.0.0/24" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { RangeEnd = "10.1.1.5" } }, "ipam.rangeEnd: 10.1.1.5 is outside ipam.subnet" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { RangeStart = "10.1.0.100", RangeEnd = "10.1.0.50" } }, "ipam.rangeEnd: 10.1.0.50 comes before ipam.rangeStart" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { RangeEnd = "10.1.0.254" } }, "ipam.rangeEnd: 10.1.0.254 reaches the host service addresses" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { Gateway = "10.9.0.1" } }, "ipam.gateway: 10.9.0.1 is not a host address" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { Gateway = "10.1.0.50" } }, "ipam.gateway: 10.1.0.50 lies inside the DHCP range" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { Reservations = [new("52:54:00:00:00:01", "10.9.9.9")] } }, "ipam.reservations: address '10.9.9.9'" },
        { new PortGroupSpec { Name = "a", Ipam = Ipam with { LeaseSeconds = 10 } }, "ipam.leaseSeconds: 10" },
        { new PortGroupSpec { Name = "a", Shaping = new TrafficShaping { AverageKbps = 0, BurstKB = 10 } }, "shaping.averageKbps: 0" },
        { new PortGroupSpec { Name = "a", Shaping = new TrafficShaping { AverageKbps = 100, PeakKbps = 50, BurstKB = 10 } }, "shaping.peakKbps: 50 is below" },
        { new PortGroupSpec { Name = "a", Shaping = new TrafficShaping { AverageKbps = 100, BurstKB = 1 } }, "shaping.burstKB: 1" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void Bad_specs_are_refused_naming_the_field(PortGroupSpec spec, string expected)
    {
        var errors = PortGroupValidator.Validate(spec, []);
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_good_spec_passes()
    {
        var spec = new PortGroupSpec
        {
            Name = "web",
            VlanId = 4095,
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 7, Local = "10.0.0.1", Peers = ["10.0.0.2"] }),
            Ipam = Ipam with { Reservations = [new("52:54:00:00:00:01", "10.1.0.5")] },
            Shaping = new TrafficShaping { AverageKbps = 1000, BurstKB = 16 },
        };
        Assert.Empty(PortGroupValidator.Validate(spec, []));
    }

    [Fact]
    public void Overlapping_subnets_name_the_other_port_group()
    {
        var a = new PortGroupSpec { Name = "a", Ipam = Ipam };
        var b = new PortGroupSpec { Name = "b", Ipam = new IpamSpec { Subnet = "10.0.0.0/16", RangeStart = "10.0.1.1", RangeEnd = "10.0.1.9" } };
        Assert.Empty(PortGroupValidator.Validate(a, [b])); // 10.0.0.0/16 ends where 10.1.0.0/24 begins
        var c = b with { Name = "c", Ipam = b.Ipam! with { Subnet = "10.1.0.0/16", RangeStart = "10.1.1.1", RangeEnd = "10.1.1.9" } };
        Assert.Contains(PortGroupValidator.Validate(a, [c]), e => e.Contains("ipam.subnet: 10.1.0.0/24 overlaps 10.1.0.0/16 of port group 'c'", StringComparison.Ordinal));
    }

    [Fact]
    public void A_nic_used_raw_belongs_to_one_port_group_and_vlans_on_it_are_unique()
    {
        var raw = new PortGroupSpec { Name = "raw", Uplink = UplinkSpec.OnNic("eth1") };
        var v10 = new PortGroupSpec { Name = "v10", VlanId = 10, Uplink = UplinkSpec.OnNic("eth1") };
        Assert.Contains(PortGroupValidator.Validate(v10, [raw]), e => e.StartsWith("uplink.nic: eth1 is already the uplink of port group 'raw'", StringComparison.Ordinal));
        Assert.Contains(PortGroupValidator.Validate(v10 with { Name = "v10b" }, [v10]), e => e.StartsWith("vlanId: VLAN 10 on eth1 is already port group 'v10'", StringComparison.Ordinal));
        Assert.Empty(PortGroupValidator.Validate(v10 with { Name = "v20", VlanId = 20 }, [v10]));
    }

    [Fact]
    public void Two_hosts_split_the_range_and_take_the_top_addresses()
    {
        var spec = new PortGroupSpec
        {
            Name = "a",
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 7, Local = "10.0.0.2", Peers = ["10.0.0.1"] }),
            Ipam = Ipam with { RangeStart = "10.1.0.10", RangeEnd = "10.1.0.19" },
        };
        var plan = IpamPlan.For(spec);
        Assert.Equal((1, 2), (plan.HostIndex, plan.HostCount));
        Assert.Equal("10.1.0.253", plan.ServiceAddress);
        Assert.Equal(("10.1.0.15", "10.1.0.19"), (plan.SliceStart, plan.SliceEnd));
        var peer = IpamPlan.For(spec with { Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 7, Local = "10.0.0.1", Peers = ["10.0.0.2"] }) });
        Assert.Equal(("10.1.0.254", "10.1.0.10", "10.1.0.14"), (peer.ServiceAddress, peer.SliceStart, peer.SliceEnd));
    }

    [Fact]
    public void Device_names_fit_the_kernel_limit_and_are_stable()
    {
        var longName = new string('x', 63);
        foreach (var n in new[] { DeviceNames.Bridge(longName), DeviceNames.Vxlan(longName), DeviceNames.Vlan(longName), DeviceNames.Tap(longName, "nic-with-long-name") })
        {
            Assert.InRange(n.Length, 1, 15);
        }
        Assert.Equal(DeviceNames.Bridge("web"), DeviceNames.Bridge("web"));
        Assert.NotEqual(DeviceNames.Bridge("web"), DeviceNames.Bridge("web2"));
        Assert.Matches("^52:54:00(:[0-9a-f]{2}){3}$", DeviceNames.Mac("vm", "eth0"));
    }
}
