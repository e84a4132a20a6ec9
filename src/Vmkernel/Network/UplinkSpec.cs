namespace Vmk.Vmkernel.Network;

/// <summary>
/// How a segment leaves the host: a physical NIC (raw for VLAN 0 and 4095, an 802.1Q sub-interface for 1-4094),
/// a VXLAN overlay, or nothing (a host-internal segment, like a vSwitch without uplinks).
/// </summary>
public sealed record UplinkSpec
{
    public string? Nic { get; init; }

    public VxlanUplink? Vxlan { get; init; }

    public static UplinkSpec None { get; } = new();

    public static UplinkSpec OnNic(string nic) => new() { Nic = nic };

    public static UplinkSpec OnVxlan(VxlanUplink vxlan) => new() { Vxlan = vxlan };
}
