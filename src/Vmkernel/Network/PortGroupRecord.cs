namespace Vmk.Vmkernel.Network;

/// <summary>
/// What the VMkernel realised for one port group on this host, written before anything is created so that
/// whatever exists is known to be ours and can be removed: the spec, the kernel names derived for it and the
/// VM ports attached. One JSON file per port group under &lt;state&gt;/network/portgroups/.
/// </summary>
public sealed record PortGroupRecord
{
    public required PortGroupSpec Spec { get; init; }

    public required string Bridge { get; init; }

    /// <summary>The bridge's uplink port: the VXLAN or VLAN device we created, or the NIC itself; null if none.</summary>
    public string? UplinkPort { get; init; }

    /// <summary>True when <see cref="UplinkPort"/> was created by us (and is deleted on removal), false for a NIC.</summary>
    public bool UplinkCreated { get; init; }

    public required string NftTable { get; init; }

    public int Mtu { get; init; } = 1500;

    public IReadOnlyList<PortRecord> Ports { get; init; } = [];
}
