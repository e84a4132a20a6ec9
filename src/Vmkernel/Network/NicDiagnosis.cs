namespace Vmk.Vmkernel.Network;

/// <summary>
/// The answer to "my VM cannot reach the network" for one NIC: where it is attached, what the kernel says about
/// its port and its segment, which addresses it has or claims, and a list of findings in plain words.
/// </summary>
public sealed record NicDiagnosis(
    string Vm,
    PortStatus Port,
    PortGroupStatus PortGroup,
    string? CheckedAddress,
    bool? AddressInSubnet,
    IReadOnlyList<string> Findings);
