namespace Vmk.Vmkernel.Vm;

/// <summary>
/// A virtio NIC. On a port group (the usual case) the vSwitch creates its tap on the port group's bridge before
/// QEMU starts and deletes it when the VM stops; a caller that brings its own tap names it and leaves
/// <see cref="PortGroup"/> empty. Empty <see cref="Tap"/> and <see cref="Mac"/> are derived by the VMkernel when
/// the VM is defined, stably from the VM and NIC names (the same on every host, so a migrated VM keeps its MAC).
/// </summary>
public sealed record NicSpec
{
    public required string Name { get; init; }

    /// <summary>The port group the NIC joins; null for a tap the caller created and attached itself.</summary>
    public string? PortGroup { get; init; }

    /// <summary>Host tap device name (at most 15 characters); derived for a NIC on a port group.</summary>
    public string Tap { get; init; } = "";

    /// <summary>MAC address, e.g. 52:54:00:12:34:56; derived when empty.</summary>
    public string Mac { get; init; } = "";
}
