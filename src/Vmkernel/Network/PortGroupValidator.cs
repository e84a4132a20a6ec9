using System.Text.RegularExpressions;

namespace Vmk.Vmkernel.Network;

/// <summary>
/// Checks a port group before anything is changed on the host. Every problem is reported with the field it is
/// about (camelCase, as in the PortGroup manifest) and what would be accepted.
/// </summary>
public static partial class PortGroupValidator
{
    public static IReadOnlyList<string> Validate(PortGroupSpec spec, IEnumerable<PortGroupSpec> others)
    {
        var errors = new List<string>();
        if (!NamePattern().IsMatch(spec.Name))
        {
            errors.Add($"name: '{spec.Name}' must be 1-63 lowercase letters, digits or '-', starting with a letter or digit");
        }
        if (spec.VlanId is < 0 or > PortGroupSpec.TrunkVlan)
        {
            errors.Add($"vlanId: {spec.VlanId} is outside 0-4095 (0 = untagged, 1-4094 = VLAN, 4095 = trunk)");
        }
        if (spec.Mtu is < 576 or > 9000)
        {
            errors.Add($"mtu: {spec.Mtu} is outside 576-9000; leave it empty for the most the uplink carries");
        }
        ValidateUplink(spec, errors);
        ValidateShaping(spec.Shaping, errors);
        if (spec.Ipam is { } ipam)
        {
            ValidateIpam(spec, ipam, errors);
        }
        foreach (var other in others.Where(o => o.Name != spec.Name))
        {
            ValidateAgainst(spec, other, errors);
        }
        return errors;
    }

    private static void ValidateUplink(PortGroupSpec spec, List<string> errors)
    {
        var uplink = spec.Uplink;
        if (uplink.Nic is not null && uplink.Vxlan is not null)
        {
            errors.Add("uplink: give either nic or vxlan, not both");
            return;
        }
        if (uplink.Nic is { } nic && !InterfacePattern().IsMatch(nic))
        {
            errors.Add($"uplink.nic: '{nic}' is not a network device name (1-15 characters, no '/', ':' or spaces)");
        }
        if (uplink.Vxlan is { } vx)
        {
            if (vx.Vni is < 1 or > 16_777_215)
            {
                errors.Add($"uplink.vxlan.vni: {vx.Vni} is outside 1-16777215");
            }
            if (!Ipv4.TryParse(vx.Local, out _))
            {
                errors.Add($"uplink.vxlan.local: '{vx.Local}' is not an IPv4 address");
            }
            foreach (var peer in vx.Peers)
            {
                if (!Ipv4.TryParse(peer, out _))
                {
                    errors.Add($"uplink.vxlan.peers: '{peer}' is not an IPv4 address");
                }
                else if (peer == vx.Local)
                {
                    errors.Add($"uplink.vxlan.peers: '{peer}' is this host's own address (uplink.vxlan.local)");
                }
            }
            if (vx.DstPort is < 1 or > 65535)
            {
                errors.Add($"uplink.vxlan.dstPort: {vx.DstPort} is outside 1-65535");
            }
            if (spec.VlanId is >= 1 and <= 4094)
            {
                errors.Add($"vlanId: {spec.VlanId} needs an 802.1Q uplink (uplink.nic); a VXLAN uplink carries the segment untagged (0) or as a trunk (4095)");
            }
        }
    }

    private static void ValidateShaping(TrafficShaping? shaping, List<string> errors)
    {
        if (shaping is null)
        {
            return;
        }
        if (shaping.AverageKbps <= 0)
        {
            errors.Add($"shaping.averageKbps: {shaping.AverageKbps} must be positive (kbit/s)");
        }
        if (shaping.PeakKbps != 0 && shaping.PeakKbps < shaping.AverageKbps)
        {
            errors.Add($"shaping.peakKbps: {shaping.PeakKbps} is below shaping.averageKbps {shaping.AverageKbps}; give at least the average or 0");
        }
        if (shaping.BurstKB < 2)
        {
            errors.Add($"shaping.burstKB: {shaping.BurstKB} must be at least 2 (KB): a burst smaller than one frame lets nothing through");
        }
    }

    private static void ValidateIpam(PortGroupSpec spec, IpamSpec ipam, List<string> errors)
    {
        if (!Ipv4.TryParseSubnet(ipam.Subnet, out var network, out var prefix))
        {
            errors.Add($"ipam.subnet: '{ipam.Subnet}' is not an IPv4 subnet like 10.20.0.0/24 (prefix 8-30, no host bits set)");
            return;
        }
        var broadcast = network | ~Ipv4.Mask(prefix);
        bool InSubnet(uint a) => Ipv4.Contains(network, prefix, a) && a != network && a != broadcast;
        uint? gateway = null;
        if (ipam.Gateway is not null)
        {
            if (!Ipv4.TryParse(ipam.Gateway, out var gw))
            {
                errors.Add($"ipam.gateway: '{ipam.Gateway}' is not an IPv4 address");
            }
            else if (!InSubnet(gw))
            {
                errors.Add($"ipam.gateway: {ipam.Gateway} is not a host address of ipam.subnet {ipam.Subnet}");
            }
            else
            {
                gateway = gw;
            }
        }
        var rangeOk = true;
        if (!Ipv4.TryParse(ipam.RangeStart, out var start))
        {
            errors.Add($"ipam.rangeStart: '{ipam.RangeStart}' is not an IPv4 address");
            rangeOk = false;
        }
        else if (!InSubnet(start))
        {
            errors.Add($"ipam.rangeStart: {ipam.RangeStart} is outside ipam.subnet {ipam.Subnet}");
            rangeOk = false;
        }
        if (!Ipv4.TryParse(ipam.RangeEnd, out var end))
        {
            errors.Add($"ipam.rangeEnd: '{ipam.RangeEnd}' is not an IPv4 address");
            rangeOk = false;
        }
        else if (!InSubnet(end))
        {
            errors.Add($"ipam.rangeEnd: {ipam.RangeEnd} is outside ipam.subnet {ipam.Subnet}");
            rangeOk = false;
        }
        if (rangeOk && end < start)
        {
            errors.Add($"ipam.rangeEnd: {ipam.RangeEnd} comes before ipam.rangeStart {ipam.RangeStart}");
            rangeOk = false;
        }
        if (ipam.LeaseSeconds < 120)
        {
            errors.Add($"ipam.leaseSeconds: {ipam.LeaseSeconds} is below dnsmasq's minimum of 120");
        }
        var (_, hosts) = IpamPlan.HostSlot(spec);
        if (rangeOk && end - start + 1 < (uint)hosts)
        {
            errors.Add($"ipam.rangeStart/rangeEnd: the range has {end - start + 1} addresses but is split between {hosts} hosts");
            rangeOk = false;
        }
        // The top addresses of the subnet, one per host, are the hosts' own (dnsmasq needs one on the bridge).
        var serviceLow = broadcast - (uint)hosts;
        string Services() => hosts == 1 ? Ipv4.Format(serviceLow) : $"{Ipv4.Format(serviceLow)}-{Ipv4.Format(broadcast - 1)}";
        if (serviceLow <= network)
        {
            errors.Add($"ipam.subnet: {ipam.Subnet} is too small for {hosts} hosts' service addresses");
            return;
        }
        if (gateway is { } g && g >= serviceLow)
        {
            errors.Add($"ipam.gateway: {ipam.Gateway} is reserved as a host service address ({Services()}); pick a lower one");
        }
        if (rangeOk && end >= serviceLow)
        {
            errors.Add($"ipam.rangeEnd: {ipam.RangeEnd} reaches the host service addresses ({Services()}); end the range below them");
        }
        if (rangeOk && gateway is { } gw2 && gw2 >= start && gw2 <= end)
        {
            errors.Add($"ipam.gateway: {ipam.Gateway} lies inside the DHCP range {ipam.RangeStart}-{ipam.RangeEnd}");
        }
        var macs = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var addresses = new HashSet<uint>();
        foreach (var r in ipam.Reservations)
        {
            if (!MacPattern().IsMatch(r.Mac))
            {
                errors.Add($"ipam.reservations: MAC '{r.Mac}' is not of the form 52:54:00:12:34:56");
            }
            else if (!macs.Add(r.Mac))
            {
                errors.Add($"ipam.reservations: MAC {r.Mac} is reserved twice");
            }
            if (!Ipv4.TryParse(r.Address, out var a) || !InSubnet(a))
            {
                errors.Add($"ipam.reservations: address '{r.Address}' (for {r.Mac}) is not a host address of ipam.subnet {ipam.Subnet}");
            }
            else if (!addresses.Add(a))
            {
                errors.Add($"ipam.reservations: address {r.Address} is reserved twice");
            }
            else if (a >= serviceLow || a == gateway)
            {
                errors.Add($"ipam.reservations: address {r.Address} is the gateway or a host service address");
            }
        }
    }

    private static void ValidateAgainst(PortGroupSpec spec, PortGroupSpec other, List<string> errors)
    {
        if (spec.Ipam is { } a && other.Ipam is { } b
            && Ipv4.TryParseSubnet(a.Subnet, out var na, out var pa) && Ipv4.TryParseSubnet(b.Subnet, out var nb, out var pb))
        {
            var p = Math.Min(pa, pb);
            if ((na & Ipv4.Mask(p)) == (nb & Ipv4.Mask(p)))
            {
                errors.Add($"ipam.subnet: {a.Subnet} overlaps {b.Subnet} of port group '{other.Name}'");
            }
        }
        if (spec.Uplink.Vxlan is { } va && other.Uplink.Vxlan is { } vb && va.Vni == vb.Vni && va.DstPort == vb.DstPort)
        {
            errors.Add($"uplink.vxlan.vni: {va.Vni} is already the VNI of port group '{other.Name}'");
        }
        if (spec.Uplink.Nic is { } nic && nic == other.Uplink.Nic)
        {
            var raw = spec.VlanId is 0 or PortGroupSpec.TrunkVlan;
            var otherRaw = other.VlanId is 0 or PortGroupSpec.TrunkVlan;
            if (raw || otherRaw)
            {
                errors.Add($"uplink.nic: {nic} is already the uplink of port group '{other.Name}' (VLAN {other.VlanId}); a NIC used untagged or as a trunk (VLAN 0 or 4095) belongs to one port group only");
            }
            else if (spec.VlanId == other.VlanId)
            {
                errors.Add($"vlanId: VLAN {spec.VlanId} on {nic} is already port group '{other.Name}'");
            }
        }
    }

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex NamePattern();

    [GeneratedRegex(@"^[^\s/:]{1,15}$")]
    private static partial Regex InterfacePattern();

    [GeneratedRegex("^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]
    internal static partial Regex MacPattern();
}
