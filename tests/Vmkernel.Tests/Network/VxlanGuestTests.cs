using System.Text.RegularExpressions;
using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// Real guests on two hosts (namespaces on a fabric) in port groups that span them over VXLAN, their NICs
/// attached by the VMkernel. Guest-to-guest reachability is the guest's own: the second guest is told to ping the
/// first (kernel command line vmk.ping=IP) and reports each answer on its console. Isolation between port
/// groups is shown at layer 2: an ARP request on one segment gets no answer from a guest on the other.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed partial class VxlanGuestTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);
    private NetworkLab _lab = null!;
    private LabVmkernel _a = null!;
    private LabVmkernel _b = null!;

    public async Task InitializeAsync()
    {
        // A fabric of plain 1500-byte Ethernet: the segments get 1450, and the guests learn it through DHCP.
        _lab = await NetworkLab.CreateAsync(hosts: 2, fabricMtu: 1500);
        _a = await LabVmkernel.OpenAsync(_lab.Hosts[0]);
        _b = await LabVmkernel.OpenAsync(_lab.Hosts[1]);
    }

    public async Task DisposeAsync()
    {
        if (_a is not null)
        {
            await _a.DisposeAsync();
        }
        if (_b is not null)
        {
            await _b.DisposeAsync();
        }
        await _lab.DisposeAsync();
    }

    private PortGroupSpec Spanning(LabVmkernel on, string name, int vni, int subnet, int vlan = 0)
    {
        var peer = on == _a ? _b : _a;
        return new PortGroupSpec
        {
            Name = name,
            VlanId = vlan,
            Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = vni, Local = on.Host.Address, Peers = [peer.Host.Address] }),
            Ipam = new IpamSpec
            {
                Subnet = $"10.{subnet}.0.0/24",
                Gateway = $"10.{subnet}.0.1",
                RangeStart = $"10.{subnet}.0.10",
                RangeEnd = $"10.{subnet}.0.99",
                LeaseSeconds = 600,
            },
        };
    }

    private async Task ApplyEverywhereAsync(string name, int vni, int subnet, int vlan = 0)
    {
        await _a.Switch.ApplyAsync(Spanning(_a, name, vni, subnet, vlan));
        await _b.Switch.ApplyAsync(Spanning(_b, name, vni, subnet, vlan));
    }

    [Fact]
    public async Task Guests_on_two_hosts_get_dhcp_addresses_reach_each_other_and_not_another_port_group()
    {
        var subnet = Random.Shared.Next(100, 200);
        await ApplyEverywhereAsync("blue", 5000 + subnet, subnet);
        await ApplyEverywhereAsync("red", 6000 + subnet, subnet + 1);

        var (ga, nicA, ipA) = await _a.BootAsync("ga", "blue");
        var (gb, nicB, ipB) = await _b.BootAsync("gb", "blue", $"vmk.ping={ipA}");

        // Each host's dnsmasq served its own slice of the range; the addresses reach the VMs' status.
        Assert.InRange(Last(ipA), 10, 54);
        Assert.InRange(Last(ipB), 55, 99);
        Assert.Contains(ipA, _a.Switch.GuestAddresses("ga"));
        Assert.Contains(ipB, _b.Switch.GuestAddresses("gb"));
        Assert.Equal([$"{ipA}/24"], Assert.Single(ga.GuestAddresses).Addresses);
        Assert.Equal([$"{ipB}/24"], Assert.Single(gb.GuestAddresses).Addresses);

        // Guest to guest across the overlay: B pings A and A answers.
        using (var cts = new CancellationTokenSource(Deadline))
        {
            await gb.Console!.WaitForLineAsync(l => l.Contains($"VMK-PING {ipA} ok", StringComparison.Ordinal), cts.Token);
        }

        // Host to guest, both ways. The segment is 1450 bytes (1500 of fabric - 50 of VXLAN); a 1500-byte echo
        // reaches the guest in fragments, and its 1500-byte answer comes back only because the guest took the
        // segment's MTU from DHCP (option 26) and fragments it too: at 1500 the bridge would drop it at the uplink.
        await _a.Sh($"ping -c 1 -w 60 {ipB}");
        await _b.Sh($"ping -c 1 -w 60 {ipA}");
        await _a.Sh($"ping -c 1 -w 30 -s 1472 {ipB}");

        // Another port group: a guest there gets an address in its own subnet, reaches its own segment across
        // hosts, and cannot reach blue's guests.
        await _b.StopAsync(gb);
        var (gc, nicC, ipC) = await _b.BootAsync("gc", "red");
        Assert.StartsWith($"10.{subnet + 1}.0.", ipC);
        var probeNic = await _a.Switch.CreateTapAsync("probe", "eth0", "blue");
        using var probe = TapEndpoint.Open(_a.Host.Namespace, probeNic.Tap);
        var redNic = await _a.Switch.CreateTapAsync("probe-red", "eth0", "red");
        using var red = TapEndpoint.Open(_a.Host.Namespace, redNic.Tap);
        Assert.Equal(nicC.Mac, await ArpAsync(red, redNic.Mac, $"10.{subnet + 1}.0.200", ipC, Deadline));
        Assert.Equal(nicA.Mac, await ArpAsync(probe, probeNic.Mac, $"10.{subnet}.0.200", ipA, Deadline));
        Assert.Null(await ArpAsync(red, redNic.Mac, $"10.{subnet + 1}.0.201", ipA, TimeSpan.FromSeconds(5)));
        Assert.Null(await ArpAsync(red, redNic.Mac, $"10.{subnet}.0.201", ipA, TimeSpan.FromSeconds(5)));
        await _a.StopAsync(ga);
        await _b.StopAsync(gc);
    }

    [Fact]
    public async Task Guests_on_a_trunk_exchange_frames_they_tag_themselves()
    {
        var subnet = Random.Shared.Next(100, 200);
        await ApplyEverywhereAsync("trunk", 7000 + subnet, subnet, vlan: PortGroupSpec.TrunkVlan);
        foreach (var host in new[] { _a, _b })
        {
            await host.Sh("nft add table bridge vmktest");
            await host.Sh("nft 'add chain bridge vmktest c { type filter hook postrouting priority 0; }'");
        }

        // Each guest runs DHCP on eth0.100: its discovers are broadcasts it tags with VLAN 100 itself.
        var (ga, nicA) = await _a.BootWithoutAddressAsync("ta", "trunk", "vmk.vlans=100");
        var (gb, nicB) = await _b.BootWithoutAddressAsync("tb", "trunk", "vmk.vlans=100");
        await _a.Sh($"nft add rule bridge vmktest c oifname {nicA.Tap} ether saddr {nicB.Mac} vlan id 100 counter");
        await _b.Sh($"nft add rule bridge vmktest c oifname {nicB.Tap} ether saddr {nicA.Mac} vlan id 100 counter");

        var deadline = DateTime.UtcNow + Deadline;
        while (await CountAsync(_a) == 0 || await CountAsync(_b) == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no VLAN 100 frame went from one guest to the other");
            await Task.Delay(500); // polling kernel counters; there is no event to wait on
        }
        await _a.StopAsync(ga);
        await _b.StopAsync(gb);
    }

    private static int Last(string ip) => int.Parse(ip.Split('.')[3]);

    private static async Task<long> CountAsync(LabVmkernel host)
    {
        var text = await host.Sh("nft list table bridge vmktest");
        return CounterPattern().Matches(text).Sum(m => long.Parse(m.Groups[1].Value));
    }

    /// <summary>Asks who has <paramref name="target"/> from a port; returns the MAC that answered, or null.</summary>
    private static async Task<string?> ArpAsync(TapEndpoint port, string mac, string senderIp, string target, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            port.Send(Frames.ArpRequest(mac, senderIp, target));
            var reply = await Task.Run(() => port.ReceiveMatching(f => Frames.ArpReplyFor(f, target) is not null, TimeSpan.FromSeconds(2)));
            if (reply is not null)
            {
                return Frames.ArpReplyFor(reply, target);
            }
        }
        return null;
    }

    [GeneratedRegex(@"counter packets (\d+)")]
    private static partial Regex CounterPattern();
}
