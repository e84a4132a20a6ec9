namespace Vmk.Vmkernel.Network;

/// <summary>
/// A port group as the VMkernel realises it on one host: a Linux bridge that the VMs' taps join, an uplink,
/// a security policy, optional shaping and optional DHCP. Persisted as JSON in the network state directory.
/// </summary>
public sealed record PortGroupSpec
{
    public const int TrunkVlan = 4095;

    /// <summary>Lowercase letters, digits and '-', at most 63 characters.</summary>
    public required string Name { get; init; }

    /// <summary>0 = untagged, 1-4094 = 802.1Q sub-interface of the uplink NIC, 4095 = trunk (guests tag).</summary>
    public int VlanId { get; init; }

    public UplinkSpec Uplink { get; init; } = UplinkSpec.None;

    public SecurityPolicy Security { get; init; } = new();

    public TrafficShaping? Shaping { get; init; }

    public IpamSpec? Ipam { get; init; }

    /// <summary>
    /// MTU of the segment (bridge, taps, and option 26 of its DHCP); null = the most the uplink carries without
    /// fragmenting: the NIC's MTU, or the underlay's minus the 50 bytes of VXLAN encapsulation.
    /// </summary>
    public int? Mtu { get; init; }

    /// <summary>Value equality through the lists too, so "same spec" means "nothing to do".</summary>
    public bool SameAs(PortGroupSpec other) =>
        System.Text.Json.JsonSerializer.Serialize(this) == System.Text.Json.JsonSerializer.Serialize(other);
}
