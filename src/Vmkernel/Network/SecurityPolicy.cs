namespace Vmk.Vmkernel.Network;

/// <summary>
/// A port group's security policy, with vSphere's defaults. How each setting is enforced on a Linux bridge is
/// described in docs/network.md: promiscuous Reject filters what a VM port receives; MAC changes and forged
/// transmits Reject filter what it sends.
/// </summary>
public sealed record SecurityPolicy
{
    public PolicyAction Promiscuous { get; init; } = PolicyAction.Reject;

    public PolicyAction MacChanges { get; init; } = PolicyAction.Accept;

    public PolicyAction ForgedTransmits { get; init; } = PolicyAction.Accept;

    /// <summary>Frames a VM sends must carry the MAC address the vSwitch gave its NIC.</summary>
    public bool ChecksSourceMac => ForgedTransmits == PolicyAction.Reject || MacChanges == PolicyAction.Reject;

    /// <summary>A VM port receives only frames for its own MAC, broadcast and multicast.</summary>
    public bool FiltersDestinationMac => Promiscuous == PolicyAction.Reject;
}
