using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>Port groups built by the real kernel inside a host namespace (no guests).</summary>
public sealed class PortGroupKernelTests : IAsyncLifetime
{
    private readonly TempStateDirectory _state = new();
    private NetworkLab _lab = null!;
    private RecordingRunner _runner = null!;
    private VSwitch _sw = null!;

    public async Task InitializeAsync()
    {
        _lab = await NetworkLab.CreateAsync(hosts: 1);
        _runner = new RecordingRunner(new ProcessCommandRunner(_lab.Hosts[0].Namespace));
        _sw = VSwitch.Open(_state.Path, _runner, NullLogger.Instance);
    }

    public async Task DisposeAsync()
    {
        await _lab.DisposeAsync();
        _state.Dispose();
    }

    private PortGroupSpec Overlay(string name = "web", int vni = 100) => new()
    {
        Name = name,
        Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = vni, Local = _lab.Hosts[0].Address, Peers = ["172.31.255.99"] }),
        Security = new SecurityPolicy { ForgedTransmits = PolicyAction.Reject },
        Shaping = new TrafficShaping { AverageKbps = 10_000, BurstKB = 32 },
        Ipam = new IpamSpec { Subnet = "10.77.0.0/24", Gateway = "10.77.0.1", RangeStart = "10.77.0.10", RangeEnd = "10.77.0.50" },
    };

    private Task<string> InHost(string command) => NetworkLab.Sh($"nsenter --net=/run/netns/{_lab.Hosts[0].Namespace} {command}");

    [Fact]
    public async Task Apply_builds_the_segment_and_applying_again_changes_nothing()
    {
        var record = await _sw.ApplyAsync(Overlay());
        await _sw.CreateTapAsync("vm1", "eth0", "web");

        var links = await _sw.ReadLinksAsync();
        Assert.Equal("bridge", links[record.Bridge].Kind);
        Assert.Equal(1450, links[record.Bridge].Mtu); // fabric MTU 1500 - 50 bytes of VXLAN
        Assert.Equal(record.Bridge, links[record.UplinkPort!].Master);
        Assert.Equal(100, links[record.UplinkPort!].VxlanId);
        Assert.Equal(record.Bridge, links[DeviceNames.Tap("vm1", "eth0")].Master);
        Assert.Contains("tbf", await InHost($"tc qdisc show dev {DeviceNames.Tap("vm1", "eth0")}"));
        Assert.Contains(record.NftTable, await InHost("nft list tables"));
        var addr = await InHost($"ip addr show dev {record.Bridge}");
        Assert.True(addr.Contains("10.77.0.254/24", StringComparison.Ordinal), addr + string.Join("\n", _runner.Writes));
        Assert.Equal(["172.31.255.99"], await _sw.VxlanPeersAsync(record.UplinkPort!));
        Assert.True(File.Exists(_sw.Paths.DnsmasqPid("web")));

        _runner.Clear();
        await _sw.ApplyAsync(Overlay());
        Assert.Empty(_runner.Writes);

        // A changed peer list is reconciled in place: one flood entry added, one removed, nothing else.
        _runner.Clear();
        var moved = Overlay() with { Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 100, Local = _lab.Hosts[0].Address, Peers = ["172.31.255.98"] }) };
        await _sw.ApplyAsync(moved);
        Assert.Contains($"bridge fdb append 00:00:00:00:00:00 dev {record.UplinkPort} dst 172.31.255.98", _runner.Writes);
        Assert.Contains($"bridge fdb del 00:00:00:00:00:00 dev {record.UplinkPort} dst 172.31.255.99", _runner.Writes);
        Assert.DoesNotContain(_runner.Writes, w => w.Contains("link add", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Removal_leaves_no_bridge_device_rule_process_or_file()
    {
        var before = await InHost("ip -j link show");
        await _sw.ApplyAsync(Overlay());
        await _sw.ApplyAsync(new PortGroupSpec { Name = "lab", VlanId = 4095 });
        await _sw.CreateTapAsync("vm1", "eth0", "web");
        var dnsmasqPid = int.Parse(File.ReadAllText(_sw.Paths.DnsmasqPid("web")).Trim());

        await _sw.RemoveTapsAsync("vm1");
        await _sw.RemoveAsync("web");
        await _sw.RemoveAsync("lab");

        Assert.Equal(Names(before), Names(await InHost("ip -j link show")));
        Assert.Equal("", (await InHost("nft list ruleset")).Trim());
        Assert.False(NetworkLab.Runs(dnsmasqPid), "dnsmasq still runs");
        Assert.Empty(Directory.EnumerateFiles(_sw.Paths.Root, "*", SearchOption.AllDirectories));
        Assert.Empty(_sw.PortGroups);
    }

    [Fact]
    public async Task A_port_group_in_use_cannot_be_removed()
    {
        await _sw.ApplyAsync(Overlay());
        await _sw.CreateTapAsync("vm1", "eth0", "web");
        var e = await Assert.ThrowsAsync<VmkernelException>(() => _sw.RemoveAsync("web"));
        Assert.Contains("in use by VMs vm1", e.Message);
        Assert.Contains(DeviceNames.Bridge("web"), (await _sw.ReadLinksAsync()).Keys);
    }

    [Fact]
    public async Task Bad_uplinks_are_refused_naming_the_field_and_nothing_is_left()
    {
        var before = await InHost("ip -j link show");

        var noNic = await Assert.ThrowsAsync<VmkernelException>(() => _sw.ApplyAsync(new PortGroupSpec { Name = "a", Uplink = UplinkSpec.OnNic("eth9") }));
        Assert.Contains("uplink.nic: there is no network device 'eth9'", noNic.Message);

        var notLocal = await Assert.ThrowsAsync<VmkernelException>(() => _sw.ApplyAsync(new PortGroupSpec
        {
            Name = "b",
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 5, Local = "192.0.2.77" }),
        }));
        Assert.Contains("uplink.vxlan.local: 192.0.2.77 is not an address of this host", notLocal.Message);

        // This kernel has no 802.1Q devices: the VLAN uplink is the first thing built, and fails cleanly.
        var vlan = await Assert.ThrowsAsync<VmkernelException>(() => _sw.ApplyAsync(new PortGroupSpec
        {
            Name = "c",
            VlanId = 10,
            Uplink = UplinkSpec.OnNic("uplink0"),
            Ipam = new IpamSpec { Subnet = "10.5.0.0/24", RangeStart = "10.5.0.10", RangeEnd = "10.5.0.20" },
        }));
        Assert.Contains("802.1Q", vlan.Message);
        Assert.Contains("8021q", vlan.Message);

        Assert.Equal(Names(before), Names(await InHost("ip -j link show")));
        Assert.Equal("", (await InHost("nft list ruleset")).Trim());
        Assert.Empty(_sw.PortGroups);
        Assert.Empty(Directory.EnumerateFiles(_sw.Paths.Root, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Overlapping_subnet_is_refused_and_the_first_port_group_stays()
    {
        await _sw.ApplyAsync(Overlay());
        var e = await Assert.ThrowsAsync<VmkernelException>(() => _sw.ApplyAsync(Overlay("db", 101) with
        {
            Ipam = new IpamSpec { Subnet = "10.77.0.128/25", RangeStart = "10.77.0.130", RangeEnd = "10.77.0.140" },
        }));
        Assert.Contains("ipam.subnet: 10.77.0.128/25 overlaps 10.77.0.0/24 of port group 'web'", e.Message);
        Assert.Null(_sw.Find("db"));
        Assert.DoesNotContain(DeviceNames.Bridge("db"), (await _sw.ReadLinksAsync()).Keys);
    }

    private static List<string> Names(string ipJson)
    {
        using var doc = JsonDocument.Parse(ipJson);
        return doc.RootElement.EnumerateArray().Select(e => e.GetProperty("ifname").GetString()!).Order().ToList();
    }
}
