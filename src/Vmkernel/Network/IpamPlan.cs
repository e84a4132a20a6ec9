namespace Vmk.Vmkernel.Network;

/// <summary>
/// What one host serves of a port group's IPAM. A segment that spans hosts has one dnsmasq per host, each
/// answering only its own VMs (DHCP never crosses the uplink), so the hosts must not hand out the same address:
/// the DHCP range is cut into as many equal slices as there are hosts, and each host's bridge takes its own
/// service address counted down from the top of the subnet. The hosts are the local VXLAN endpoint and its
/// peers in address order, so every host computes the same split from the same port group, with no coordination.
/// </summary>
public sealed record IpamPlan(
    string ServiceAddress,
    int Prefix,
    string Netmask,
    string SliceStart,
    string SliceEnd,
    int HostIndex,
    int HostCount)
{
    public static IpamPlan For(PortGroupSpec spec)
    {
        var ipam = spec.Ipam ?? throw new ArgumentException("port group has no IPAM", nameof(spec));
        Ipv4.TryParseSubnet(ipam.Subnet, out var network, out var prefix);
        Ipv4.TryParse(ipam.RangeStart, out var start);
        Ipv4.TryParse(ipam.RangeEnd, out var end);
        var (index, count) = HostSlot(spec);
        var broadcast = network | ~Ipv4.Mask(prefix);
        var service = broadcast - 1 - (uint)index;
        var size = end - start + 1;
        var per = size / (uint)count;
        var sliceStart = start + per * (uint)index;
        var sliceEnd = index == count - 1 ? end : sliceStart + per - 1;
        return new IpamPlan(Ipv4.Format(service), prefix, Ipv4.Format(Ipv4.Mask(prefix)), Ipv4.Format(sliceStart),
            Ipv4.Format(sliceEnd), index, count);
    }

    /// <summary>This host's position among the hosts of the segment, and how many there are.</summary>
    public static (int Index, int Count) HostSlot(PortGroupSpec spec)
    {
        if (spec.Uplink.Vxlan is not { } vx)
        {
            return (0, 1);
        }
        var hosts = vx.Peers.Append(vx.Local)
            .Select(a => Ipv4.TryParse(a, out var v) ? v : 0u)
            .Distinct()
            .Order()
            .ToList();
        Ipv4.TryParse(vx.Local, out var local);
        return (hosts.IndexOf(local), hosts.Count);
    }
}
