namespace Vmk.Vmkernel.Vmfs;

/// <summary>How to lay out a new datastore.</summary>
public sealed record FormatOptions
{
    /// <summary>Allocation unit of virtual disks (VMFS6: 1 MiB). A power of two from 64 KiB to 64 MiB.</summary>
    public int BlockSize { get; init; } = 1 << 20;

    /// <summary>Size of a new file to create; null uses the existing device or file as it is.</summary>
    public long? SizeBytes { get; init; }

    /// <summary>Heartbeat slots, i.e. hosts that can mount the datastore at once.</summary>
    public int MaxHosts { get; init; } = 32;

    /// <summary>Virtual disks the datastore can hold (file descriptors and resource leases).</summary>
    public int MaxFiles { get; init; } = 1024;

    /// <summary>Metadata journal size; one metadata change must fit in it.</summary>
    public int JournalBytes { get; init; } = 8 << 20;

    /// <summary>Lets thin disks promise more than the datastore holds (free space is always reported as it is).</summary>
    public bool AllowThinOvercommit { get; init; }

    public string Label { get; init; } = "datastore1";

    public VmfsTimings Timings { get; init; } = VmfsTimings.Default;

    /// <summary>Overwrite an existing (or half-formatted) datastore, as long as no host is live on it.</summary>
    public bool Force { get; init; }
}
