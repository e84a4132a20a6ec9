namespace Vmk.Vmkernel.Resources;

/// <summary>
/// What a VM's cgroup has consumed since it was created: CPU time of all its processes, current memory,
/// and how often the CPU limit held it back (CFS periods it was runnable in, periods it was throttled in).
/// </summary>
public sealed record CgroupUsage(
    TimeSpan CpuTime,
    long MemoryBytes,
    long CpuPeriods,
    long CpuThrottledPeriods,
    TimeSpan CpuThrottledTime);
