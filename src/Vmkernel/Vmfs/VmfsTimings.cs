namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The timing rules of the lease protocol. Stored in the superblock at format time (the defaults are VMFS-like)
/// and may be given again at mount; each host also writes its own values into its heartbeat slot and a host
/// that wants to take over another host's lease waits for the longer of its own and the holder's
/// <see cref="HostDeadAfter"/>, so a host mounted with different values never makes takeover unsafe.
/// docs/vmfs.md derives why <see cref="FenceAfter"/> + <see cref="MaxIoLatency"/> &lt; <see cref="HostDeadAfter"/> is safe.
/// </summary>
public sealed record VmfsTimings
{
    public static VmfsTimings Default { get; } = new();

    /// <summary>How often a host renews its heartbeat slot.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A host that has not renewed for this long calls its fencing callback and stops writing.</summary>
    public TimeSpan FenceAfter { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>Another host may take over this host's leases after its heartbeat has not changed for this long.</summary>
    public TimeSpan HostDeadAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The longest a single device write may take from the moment it is issued until other hosts can read it
    /// (includes the scheduling delay between deciding to write and the write). Joining waits twice this.
    /// </summary>
    public TimeSpan MaxIoLatency { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Throws when the values cannot give mutual exclusion.</summary>
    public void Validate()
    {
        if (HeartbeatInterval <= TimeSpan.Zero || MaxIoLatency <= TimeSpan.Zero)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, "heartbeatInterval and maxIoLatency must be positive.");
        }

        if (FenceAfter <= HeartbeatInterval)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument,
                $"fenceAfter ({FenceAfter.TotalMilliseconds} ms) must be longer than heartbeatInterval ({HeartbeatInterval.TotalMilliseconds} ms), or every host fences itself.");
        }

        if (FenceAfter + MaxIoLatency >= HostDeadAfter)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument,
                $"fenceAfter ({FenceAfter.TotalMilliseconds} ms) + maxIoLatency ({MaxIoLatency.TotalMilliseconds} ms) must be less than hostDeadAfter ({HostDeadAfter.TotalMilliseconds} ms): " +
                "a host must stop writing before others may take its leases.");
        }

        if (HostDeadAfter.TotalMilliseconds > uint.MaxValue)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, "hostDeadAfter is too long.");
        }
    }
}
