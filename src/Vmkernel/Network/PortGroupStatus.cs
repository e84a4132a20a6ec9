namespace Vmk.Vmkernel.Network;

/// <summary>What a port group looks like on this host right now, for the PortGroup status and `vmctl net`.</summary>
public sealed record PortGroupStatus(
    string Name,
    int VlanId,
    string Bridge,
    bool BridgeUp,
    string? Uplink,
    bool UplinkUp,
    int Mtu,
    string? Subnet,
    string? ServiceAddress,
    bool DhcpRunning,
    IReadOnlyList<PeerStatus> Peers,
    IReadOnlyList<PortStatus> Ports,
    IReadOnlyList<string> Problems);
