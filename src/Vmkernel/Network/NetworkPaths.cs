namespace Vmk.Vmkernel.Network;

/// <summary>Files of the network stack under the VMkernel state directory.</summary>
public sealed record NetworkPaths(string Root)
{
    public static NetworkPaths Under(string stateDirectory) => new(Path.Combine(stateDirectory, "network"));

    public string PortGroups => Path.Combine(Root, "portgroups");

    public string Dhcp => Path.Combine(Root, "dhcp");

    public string Record(string portGroup) => Path.Combine(PortGroups, portGroup + ".json");

    public string DnsmasqPid(string portGroup) => Path.Combine(Dhcp, portGroup + ".pid");

    public string Leases(string portGroup) => Path.Combine(Dhcp, portGroup + ".leases");

    public string DnsmasqLog(string portGroup) => Path.Combine(Dhcp, portGroup + ".log");
}
