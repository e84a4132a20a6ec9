using System.Globalization;

namespace Vmk.Vmkernel.Resources;

/// <summary>
/// <see cref="VmResources"/> -> cgroup control files, for both cgroup versions, as data.
///
/// Shares keep ESXi's ratios (High:Normal:Low = 4:2:1) and put one Normal vCPU at the kernel's default,
/// so a 1-vCPU Normal VM weighs the same as any other default cgroup on the host:
/// <list type="bullet">
/// <item>v1 cpu.shares = shares * 1024 / 1000, clamped to the kernel's 2..262144
/// (Normal vCPU 1000 -> 1024, High 2000 -> 2048, Low 500 -> 512).</item>
/// <item>v2 cpu.weight = shares / 10, clamped to 1..10000 (Normal vCPU -> 100, the default weight;
/// High -> 200, Low -> 50). Custom shares above 100000 all map to 10000.</item>
/// </list>
/// The linear maps are chosen over the OCI runtime's v1->v2 formula (1 + (shares - 2) * 9999 / 262142),
/// which squashes 512/1024/2048 into weights 20/39/79 and so does not keep 4:2:1.
///
/// Limits: CPU millicores -> quota per 100 ms period (1000m = 100000 us, a whole core). Memory limit ->
/// memory.max / memory.limit_in_bytes. Memory reservation -> v2 memory.min, a hard guarantee against
/// reclaim like ESXi's (safe because the ledger never admits more reservations than the host has), and
/// v1 memory.soft_limit_in_bytes, the nearest v1 has: under pressure the kernel reclaims first from
/// cgroups above their soft limit, so a VM without a reservation gets 0 (all of it reclaimable first).
/// </summary>
internal static class CgroupSettings
{
    public const long CpuPeriodMicroseconds = 100_000;
    public const int V1MinimumShares = 2;
    public const int V1MaximumShares = 262_144;
    public const int V2MinimumWeight = 1;
    public const int V2MaximumWeight = 10_000;

    public static long V1CpuShares(CpuShares shares) =>
        Math.Clamp((long)shares.Value * 1024 / 1000, V1MinimumShares, V1MaximumShares);

    public static long V2CpuWeight(CpuShares shares) =>
        Math.Clamp(shares.Value / 10, V2MinimumWeight, V2MaximumWeight);

    public static long QuotaMicroseconds(long limitMillicores) => limitMillicores * CpuPeriodMicroseconds / 1000;

    public static IReadOnlyList<CgroupSetting> ForV1(VmResources resources)
    {
        resources.Validate();
        return
        [
            new("cpu", "cpu.shares", Number(V1CpuShares(resources.CpuShares))),
            new("cpu", "cpu.cfs_period_us", Number(CpuPeriodMicroseconds)),
            new("cpu", "cpu.cfs_quota_us", resources.CpuLimitMillicores is { } limit ? Number(QuotaMicroseconds(limit)) : "-1"),
            new("memory", "memory.limit_in_bytes", resources.MemoryLimitBytes is { } memory ? Number(memory) : "-1"),
            new("memory", "memory.soft_limit_in_bytes", Number(resources.MemoryReservationBytes ?? 0)),
        ];
    }

    public static IReadOnlyList<CgroupSetting> ForV2(VmResources resources)
    {
        resources.Validate();
        var quota = resources.CpuLimitMillicores is { } limit ? Number(QuotaMicroseconds(limit)) : "max";
        return
        [
            new("cpu", "cpu.weight", Number(V2CpuWeight(resources.CpuShares))),
            new("cpu", "cpu.max", $"{quota} {Number(CpuPeriodMicroseconds)}"),
            new("memory", "memory.max", resources.MemoryLimitBytes is { } memory ? Number(memory) : "max"),
            new("memory", "memory.min", Number(resources.MemoryReservationBytes ?? 0)),
        ];
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
