namespace Vmk.Vmkernel.Vm;

/// <summary>A virtio NIC backed by a tap device on the host (the vSwitch attaches the tap to its port group).</summary>
public sealed record NicSpec
{
    public required string Name { get; init; }

    /// <summary>Host tap device name (at most 15 characters).</summary>
    public required string Tap { get; init; }

    /// <summary>MAC address, e.g. 52:54:00:12:34:56.</summary>
    public required string Mac { get; init; }
}
