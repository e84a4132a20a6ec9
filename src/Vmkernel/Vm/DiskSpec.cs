namespace Vmk.Vmkernel.Vm;

/// <summary>
/// A virtual disk as QEMU reaches it. The block layer is pluggable: a local file, or an export of the
/// VMkernel's NBD server on a unix socket (how datastore disks are served).
/// </summary>
public sealed record DiskSpec
{
    /// <summary>Short name, unique within the VM; becomes the QEMU node name.</summary>
    public required string Name { get; init; }

    /// <summary>A raw image file on the host (used when <see cref="NbdSocket"/> is null).</summary>
    public string? File { get; init; }

    /// <summary>Unix socket of an NBD server exporting this disk.</summary>
    public string? NbdSocket { get; init; }

    /// <summary>Export name on the NBD server.</summary>
    public string? NbdExport { get; init; }

    public bool ReadOnly { get; init; }
}
