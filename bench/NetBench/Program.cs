using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Network;
using Vmk.Vmkernel.Tests;
using Vmk.Vmkernel.Tests.Network;

// Usage: NetBench [PORT_GROUPS] [TAPS] [PINGS]
// Figures on stdout as "name value"; how each was measured on stderr. Hosts are network namespaces on a fabric.
var inv = CultureInfo.InvariantCulture;
var portGroups = args.Length > 0 ? int.Parse(args[0], inv) : 100;
var taps = args.Length > 1 ? int.Parse(args[1], inv) : 20;
var pings = args.Length > 2 ? int.Parse(args[2], inv) : 20;

static double Median(List<double> xs)
{
    var s = xs.Order().ToList();
    return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
}

void Report(string name, double value, string how) =>
    Console.WriteLine(string.Create(inv, $"{name} {value:F2}    # {how}"));

await using var lab = await NetworkLab.CreateAsync(hosts: 2, fabricMtu: 1550);
var hostA = lab.Hosts[0];
var hostB = lab.Hosts[1];
var state = Path.Combine("/tmp", $"vmk-netbench-{lab.Id}");
Directory.CreateDirectory(state);
try
{
    var sw = VSwitch.Open(state, new ProcessCommandRunner(hostA.Namespace), NullLogger.Instance);
    PortGroupSpec Spec(int i) => new()
    {
        Name = $"pg{i}",
        Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 10_000 + i, Local = hostA.Address, Peers = [hostB.Address] }),
        Security = new SecurityPolicy { ForgedTransmits = PolicyAction.Reject },
        Ipam = new IpamSpec { Subnet = $"10.128.{i}.0/24", Gateway = $"10.128.{i}.1", RangeStart = $"10.128.{i}.10", RangeEnd = $"10.128.{i}.200" },
    };

    // 1. Port groups: VXLAN uplink + bridge + address + nftables table + dnsmasq each.
    var ours = new List<double>();
    for (var i = 0; i < portGroups; i++)
    {
        var t = Stopwatch.StartNew();
        await sw.ApplyAsync(Spec(i));
        ours.Add(t.Elapsed.TotalMilliseconds);
    }
    var again = new List<double>();
    for (var i = 0; i < portGroups; i++)
    {
        var t = Stopwatch.StartNew();
        await sw.ApplyAsync(Spec(i));
        again.Add(t.Elapsed.TotalMilliseconds);
    }

    // 2. vNIC attach on the first port group (tap, MTU, bridge port, nft rules regenerated).
    var attach = new List<double>();
    for (var i = 0; i < taps; i++)
    {
        var t = Stopwatch.StartNew();
        await sw.CreateTapAsync($"vm{i}", "eth0", "pg0");
        attach.Add(t.Elapsed.TotalMilliseconds);
    }
    for (var i = 0; i < taps; i++)
    {
        await sw.RemoveTapsAsync($"vm{i}");
    }
    var remove = new List<double>();
    for (var i = 0; i < portGroups; i++)
    {
        var t = Stopwatch.StartNew();
        await sw.RemoveAsync($"pg{i}");
        remove.Add(t.Elapsed.TotalMilliseconds);
    }

    // The peer: the same kernel objects made by one hand-written shell script per port group, no checks.
    var peer = new List<double>();
    for (var i = 0; i < portGroups; i++)
    {
        var script = $$"""
            set -e
            ip link add vxp{{i}} type vxlan id {{20_000 + i}} local {{hostA.Address}} dstport 4789 dev uplink0
            ip link add brp{{i}} type bridge
            ip link set vxp{{i}} master brp{{i}}; ip link set vxp{{i}} up; ip link set brp{{i}} up
            ip addr add 10.129.{{i}}.254/24 dev brp{{i}}
            bridge fdb append 00:00:00:00:00:00 dev vxp{{i}} dst {{hostB.Address}}
            echo 'table bridge p{{i}} { chain i { type filter hook prerouting priority filter; iifname "vxp{{i}}" udp dport { 67, 68 } drop; }; }' | nft -f -
            dnsmasq --conf-file=/dev/null --interface=brp{{i}} --bind-interfaces --except-interface=lo --port=0 --dhcp-range=10.129.{{i}}.10,10.129.{{i}}.200,255.255.255.0,3600 --dhcp-leasefile={{state}}/p{{i}}.leases --pid-file={{state}}/p{{i}}.pid
            """;
        var t = Stopwatch.StartNew();
        await NetworkLab.Sh($"nsenter --net=/run/netns/{hostA.Namespace} sh -c '{script.Replace("'", "'\\''")}'");
        peer.Add(t.Elapsed.TotalMilliseconds);
    }
    var peerAttach = new List<double>();
    for (var i = 0; i < taps; i++)
    {
        var t = Stopwatch.StartNew();
        await NetworkLab.Sh($"nsenter --net=/run/netns/{hostA.Namespace} sh -c 'ip tuntap add dev tp{i} mode tap && ip link set tp{i} master brp0 && ip link set tp{i} up'");
        peerAttach.Add(t.Elapsed.TotalMilliseconds);
    }

    Report("portgroup_apply_ms", Median(ours), $"median of {portGroups} new VXLAN port groups with IPAM on one host; total/{portGroups} = {ours.Average():F2}");
    Report("portgroup_apply_peer_ms", Median(peer), $"peer: one hand-written sh script per port group (same devices, table, dnsmasq; no checks), median of {portGroups}");
    Report("portgroup_reapply_ms", Median(again), "median: applying an unchanged port group (reads only, no change)");
    Report("portgroup_remove_ms", Median(remove), $"median of {portGroups} removals (dnsmasq stopped, table, VXLAN, bridge deleted)");
    Report("vnic_attach_ms", Median(attach), $"median of {taps} taps created and attached with policy and rules");
    Report("vnic_attach_peer_ms", Median(peerAttach), $"peer: ip tuntap add + master + up in one sh, median of {taps}");

    // 3. Ping RTT across hosts: two guests on port group "ping", one per host, VMs wired by their VMkernels (taps
    // made at start); the guest on host A pings the one on host B (vmk.ping=IP) and reports each RTT on its console.
    // Also a VM port on host A in a guest's seat (frames written to a tap), which takes the sender's TCG stack out.
    await using var a = await LabVmkernel.OpenAsync(hostA);
    await using var b = await LabVmkernel.OpenAsync(hostB);
    var swA = a.Switch;
    PortGroupSpec PingSpec(LabHost local, LabHost remote) => new()
    {
        Name = "ping",
        Uplink = UplinkSpec.OnVxlan(new VxlanUplink { Vni = 30_000, Local = local.Address, Peers = [remote.Address] }),
        Ipam = new IpamSpec { Subnet = "10.130.0.0/24", Gateway = "10.130.0.1", RangeStart = "10.130.0.10", RangeEnd = "10.130.0.99" },
    };
    await swA.ApplyAsync(PingSpec(hostA, hostB));
    await b.Switch.ApplyAsync(PingSpec(hostB, hostA));
    Console.Error.WriteLine("booting the guests on hosts B and A ...");
    var (vm, nic, address) = await b.BootAsync("pingee", "ping");
    var (pinger, _, _) = await a.BootAsync("pinger", "ping", $"vmk.ping={address}");
    var guestRtts = new List<double>();
    using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60 + 5 * pings)))
    {
        var marker = $"VMK-PING {address} ok ";
        var seen = 0;
        await pinger.Console!.WaitForLineAsync(l =>
        {
            var i = l.IndexOf(marker, StringComparison.Ordinal);
            if (i >= 0 && ++seen > 1) // the first one includes the ARP round trip
            {
                guestRtts.Add(double.Parse(l[(i + marker.Length)..].Trim(), CultureInfo.InvariantCulture));
            }
            return guestRtts.Count >= pings;
        }, cts.Token);
    }
    await pinger.KillAsync();
    var probeNic = await swA.CreateTapAsync("prober", "eth0", "ping");
    using var probe = TapEndpoint.Open(hostA.Namespace, probeNic.Tap);
    const string probeIp = "10.130.0.200";
    var rtts = new List<double>();
    ushort seq = 0;
    var failures = 0;
    while (rtts.Count < pings && failures < 60)
    {
        var t = Stopwatch.StartNew();
        probe.Send(Frames.IcmpEcho(probeNic.Mac, nic.Mac, probeIp, address, 0x5151, ++seq));
        var reply = probe.ReceiveMatching(f =>
        {
            if (Frames.EtherType(f) == 0x0806 && f.Length >= 42 && f[21] == 1 && new System.Net.IPAddress(f.AsSpan(38, 4)).ToString() == probeIp)
            {
                probe.Send(ArpReply(probeNic.Mac, probeIp, f)); // the guest asks who has the prober's address
                return false;
            }
            return Frames.EtherType(f) == 0x0800 && f.Length >= 42 && f[23] == 1 && f[34] == 0 && (f[40] << 8 | f[41]) == seq;
        }, TimeSpan.FromSeconds(5));
        if (reply is null)
        {
            failures++;
            continue;
        }
        if (seq > 1) // the first one includes the guest's ARP round trip
        {
            rtts.Add(t.Elapsed.TotalMilliseconds);
        }
    }
    var hostPing = await NetworkLab.Sh($"nsenter --net=/run/netns/{hostA.Namespace} ping -c {pings} -i 0.2 -w 120 {address}");
    var fabricPing = await NetworkLab.Sh($"nsenter --net=/run/netns/{hostA.Namespace} ping -c {pings} -i 0.2 -w 60 {hostB.Address}");
    Report("guest_ping_rtt_ms", Median(guestRtts),
        $"median of {guestRtts.Count}: busybox ping in the guest on host A -> guest on host B over VXLAN -> back (both TCG guests)");
    Report("vmport_to_guest_ping_rtt_ms", rtts.Count > 0 ? Median(rtts) : double.NaN,
        $"median of {rtts.Count}: VM port on host A (frames written to its tap) -> guest on host B over VXLAN -> back");
    Report("host_to_guest_ping_rtt_ms", MedianOfPing(hostPing), "median, kernel ping from host A's namespace to the guest on host B");
    Report("fabric_ping_rtt_ms", MedianOfPing(fabricPing), "peer baseline: host A to host B over the fabric, no VXLAN, no guest");
    await vm.KillAsync();
}
finally
{
    Directory.Delete(state, recursive: true);
}
return 0;

static double MedianOfPing(string output)
{
    var xs = output.Split('\n')
        .Select(l => l.IndexOf("time=", StringComparison.Ordinal) is var i and >= 0 ? l[(i + 5)..].Split(' ')[0] : null)
        .Where(s => s is not null)
        .Select(s => double.Parse(s!, CultureInfo.InvariantCulture))
        .Order()
        .ToList();
    return xs.Count == 0 ? double.NaN : xs[xs.Count / 2];
}

static byte[] ArpReply(string mac, string ip, byte[] request)
{
    var f = new byte[42];
    request.AsSpan(6, 6).CopyTo(f);              // to the asker
    Frames.Mac(mac).CopyTo(f, 6);
    f[12] = 0x08; f[13] = 0x06;
    request.AsSpan(14, 6).CopyTo(f.AsSpan(14));  // htype, ptype, hlen, plen
    f[20] = 0; f[21] = 2;                        // reply
    Frames.Mac(mac).CopyTo(f, 22);
    System.Net.IPAddress.Parse(ip).GetAddressBytes().CopyTo(f, 28);
    request.AsSpan(22, 10).CopyTo(f.AsSpan(32)); // target = the asker's MAC and IP
    return f;
}
