namespace Vmk.Vmkernel.Vm;

/// <summary>
/// A virtual disk as QEMU reaches it. The block layer is pluggable: a virtual disk on a mounted VMFS datastore
/// (served to QEMU by the VMkernel's own NBD server, under this host's lease), a local raw file, or any NBD
/// export on a unix socket.
/// </summary>
public sealed record DiskSpec
{
    /// <summary>Short name, unique within the VM; becomes the QEMU node name.</summary>
    public required string Name { get; init; }

    /// <summary>A datastore mounted on this host; with <see cref="DatastoreDisk"/> names a VMFS virtual disk.</summary>
    public string? Datastore { get; init; }

    /// <summary>The virtual disk's name on <see cref="Datastore"/>.</summary>
    public string? DatastoreDisk { get; init; }

    /// <summary>A raw image file on the host (used when <see cref="NbdSocket"/> is null).</summary>
    public string? File { get; init; }

    /// <summary>Unix socket of an NBD server exporting this disk.</summary>
    public string? NbdSocket { get; init; }

    /// <summary>Export name on the NBD server.</summary>
    public string? NbdExport { get; init; }

    public bool ReadOnly { get; init; }
}
