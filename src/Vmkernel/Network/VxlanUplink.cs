namespace Vmk.Vmkernel.Network;

/// <summary>An overlay uplink: one VNI per port group, unicast to every peer host (head-end replication).</summary>
public sealed record VxlanUplink
{
    /// <summary>VXLAN network identifier, 1 to 16777215.</summary>
    public required int Vni { get; init; }

    /// <summary>This host's tunnel endpoint address; must be an address of this host.</summary>
    public required string Local { get; init; }

    /// <summary>The other hosts' tunnel endpoint addresses (the operator hands every host the list).</summary>
    public IReadOnlyList<string> Peers { get; init; } = [];

    public int DstPort { get; init; } = 4789;
}
