using System.Globalization;

namespace Vmk.Vmkernel.Network;

/// <summary>The command line of the dnsmasq serving one port group on this host. Pure: tested as data.</summary>
public static class DnsmasqArgs
{
    public static IReadOnlyList<string> Build(PortGroupRecord record, NetworkPaths paths)
    {
        var spec = record.Spec;
        var ipam = spec.Ipam ?? throw new ArgumentException("port group has no IPAM", nameof(record));
        var plan = IpamPlan.For(spec);
        var args = new List<string>
        {
            "--conf-file=/dev/null", // nothing from /etc/dnsmasq.conf or /etc/dnsmasq.d
            $"--interface={record.Bridge}",
            "--bind-interfaces",
            "--except-interface=lo",
            "--port=0", // DHCP only, no DNS
            "--dhcp-authoritative",
            $"--dhcp-range={plan.SliceStart},{plan.SliceEnd},{plan.Netmask},{ipam.LeaseSeconds.ToString(CultureInfo.InvariantCulture)}",
            // Without a gateway, dnsmasq would announce itself as the router; an empty option announces none.
            ipam.Gateway is { } gw ? $"--dhcp-option=option:router,{gw}" : "--dhcp-option=option:router",
        };
        if (record.Mtu < 1500)
        {
            args.Add($"--dhcp-option=option:mtu,{record.Mtu.ToString(CultureInfo.InvariantCulture)}");
        }
        foreach (var r in ipam.Reservations)
        {
            args.Add($"--dhcp-host={r.Mac.ToLowerInvariant()},{r.Address}");
        }
        args.Add($"--dhcp-leasefile={paths.Leases(spec.Name)}");
        args.Add($"--pid-file={paths.DnsmasqPid(spec.Name)}");
        args.Add($"--log-facility={paths.DnsmasqLog(spec.Name)}");
        args.Add("--log-dhcp");
        return args;
    }
}
