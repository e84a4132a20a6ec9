using System.Globalization;
using System.Text;

namespace Vmk.Vmkernel.Network;

/// <summary>
/// The nftables bridge-family table of one port group, rendered whole and loaded atomically with `nft -f -`
/// (the leading "table; delete table" pair makes the load a replacement in one transaction). Pure: tested as
/// text. Prerouting sees every frame entering the bridge from a port (forwarded or to the host); postrouting
/// every frame leaving through one (forwarded or from the host).
/// </summary>
public static class NftRuleset
{
    public static string Render(PortGroupRecord record)
    {
        var spec = record.Spec;
        var t = record.NftTable;
        var sb = new StringBuilder();
        sb.Append("table bridge ").Append(t).Append('\n');
        sb.Append("delete table bridge ").Append(t).Append('\n');
        sb.Append("table bridge ").Append(t).Append(" {\n");
        sb.Append("\tchain ingress {\n\t\ttype filter hook prerouting priority filter; policy accept;\n");
        if (spec.Ipam is not null && record.UplinkPort is { } up)
        {
            // Each host's dnsmasq serves its own VMs only: DHCP never crosses the uplink.
            sb.Append("\t\tiifname \"").Append(up).Append("\" udp dport { 67, 68 } drop\n");
        }
        if (spec.VlanId != PortGroupSpec.TrunkVlan)
        {
            // Only a trunk (VLAN 4095) carries frames the guest tagged itself, as on a vSphere port group.
            sb.Append("\t\tether type 8021q drop\n");
        }
        foreach (var port in record.Ports)
        {
            if (spec.Security.ChecksSourceMac)
            {
                sb.Append("\t\tiifname \"").Append(port.Tap).Append("\" ether saddr != ").Append(port.Mac).Append(" drop\n");
            }
            if (spec.Shaping is { } s)
            {
                sb.Append("\t\tiifname \"").Append(port.Tap).Append("\" limit rate over ")
                    .Append((s.AverageKbps * 1000 / 8).ToString(CultureInfo.InvariantCulture)).Append(" bytes/second burst ")
                    .Append((s.BurstKB * 1024).ToString(CultureInfo.InvariantCulture)).Append(" bytes drop\n");
            }
        }
        sb.Append("\t}\n");
        sb.Append("\tchain egress {\n\t\ttype filter hook postrouting priority filter; policy accept;\n");
        if (spec.Ipam is not null && record.UplinkPort is { } up2)
        {
            sb.Append("\t\toifname \"").Append(up2).Append("\" udp dport { 67, 68 } drop\n");
        }
        if (spec.Security.FiltersDestinationMac)
        {
            foreach (var port in record.Ports)
            {
                // Unicast for another MAC is dropped; broadcast and multicast (group bit set) pass.
                sb.Append("\t\toifname \"").Append(port.Tap).Append("\" ether daddr != ").Append(port.Mac)
                    .Append(" ether daddr & 01:00:00:00:00:00 == 00:00:00:00:00:00 drop\n");
            }
        }
        sb.Append("\t}\n}\n");
        return sb.ToString();
    }
}
