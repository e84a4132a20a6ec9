namespace Vmk.Vmkernel.Resources;

/// <summary>
/// A VM's resource settings in ESXi's terms, with Kubernetes units: CPU in millicores (1000 = one host
/// core's worth of time), memory in bytes. Null means "none" (no limit, no reservation).
/// <list type="bullet">
/// <item>Shares: relative weight under contention (cgroup cpu.weight / cpu.shares).</item>
/// <item>Limit: a hard ceiling (cgroup cpu.max / cfs quota; memory.max / memory.limit_in_bytes). A VM's
/// memory limit covers the whole QEMU process, so the caller adds QEMU's own overhead to the guest RAM.</item>
/// <item>Reservation: a guarantee, admitted by <see cref="ReservationLedger"/> so a host never promises
/// more than it has. Memory reservations are also protected from reclaim (memory.min / soft limit); CPU
/// reservations are kept by admission alone, as CFS has no minimum bandwidth.</item>
/// </list>
/// </summary>
public sealed record VmResources(
    CpuShares CpuShares,
    long? CpuLimitMillicores = null,
    long? MemoryLimitBytes = null,
    long? MemoryReservationBytes = null,
    long? CpuReservationMillicores = null)
{
    /// <summary>The CFS quota granularity: the kernel refuses quotas under 1 ms per 100 ms period.</summary>
    public const long MinimumCpuLimitMillicores = 10;

    /// <summary>Normal shares, no limit, no reservation: what ESXi gives a new VM.</summary>
    public static VmResources Default(int vcpus) => new(CpuShares.ForLevel(SharesLevel.Normal, vcpus));

    /// <summary>Throws <see cref="ArgumentException"/> naming the field and what to do.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(CpuShares, nameof(CpuShares));
        if (CpuLimitMillicores is { } cpuLimit && cpuLimit < MinimumCpuLimitMillicores)
        {
            throw new ArgumentException(
                $"CPU limit {cpuLimit}m is too small: the kernel schedules in 1 ms slices per 100 ms, so the smallest limit is {MinimumCpuLimitMillicores}m", nameof(CpuLimitMillicores));
        }

        if (CpuReservationMillicores is { } cpuReservation)
        {
            if (cpuReservation < 0)
            {
                throw new ArgumentException($"CPU reservation {cpuReservation}m is negative: use 0 or leave it unset", nameof(CpuReservationMillicores));
            }

            if (CpuLimitMillicores is { } limit && cpuReservation > limit)
            {
                throw new ArgumentException(
                    $"CPU reservation {cpuReservation}m exceeds the CPU limit {limit}m: a VM cannot be guaranteed more than it may use", nameof(CpuReservationMillicores));
            }
        }

        if (MemoryLimitBytes is { } memoryLimit && memoryLimit <= 0)
        {
            throw new ArgumentException($"memory limit {memoryLimit} bytes is not positive: leave it unset for no limit", nameof(MemoryLimitBytes));
        }

        if (MemoryReservationBytes is { } memoryReservation)
        {
            if (memoryReservation < 0)
            {
                throw new ArgumentException($"memory reservation {memoryReservation} bytes is negative: use 0 or leave it unset", nameof(MemoryReservationBytes));
            }

            if (MemoryLimitBytes is { } limit && memoryReservation > limit)
            {
                throw new ArgumentException(
                    $"memory reservation {ResourceFormat.Bytes(memoryReservation)} exceeds the memory limit {ResourceFormat.Bytes(limit)}: a VM cannot be guaranteed more than it may use",
                    nameof(MemoryReservationBytes));
            }
        }
    }

    /// <summary>True when nothing but normal-share behaviour is asked for, which needs no cgroup to honour.</summary>
    internal bool IsUnconstrained => CpuLimitMillicores is null && MemoryLimitBytes is null
        && MemoryReservationBytes is null or 0 && CpuReservationMillicores is null or 0
        && CpuShares.Level == SharesLevel.Normal;
}
