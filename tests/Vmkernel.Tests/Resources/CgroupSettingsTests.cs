using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

/// <summary>
/// Resources -> control files as data. The v1 files are also exercised against the kernel in
/// <see cref="VmCgroupTests"/>; this machine's v2 tree has no controllers, so for v2 this is the check.
/// </summary>
public class CgroupSettingsTests
{
    private const long MiB = 1024 * 1024;

    private static readonly VmResources Limited = new(CpuShares.ForLevel(SharesLevel.Low, 2), CpuLimitMillicores: 2500,
        MemoryLimitBytes: 512 * MiB, MemoryReservationBytes: 256 * MiB, CpuReservationMillicores: 500);

    [Fact]
    public void V2_files_for_a_limited_VM()
    {
        Assert.Equal(
        [
            new("cpu", "cpu.weight", "100"),
            new("cpu", "cpu.max", "250000 100000"),
            new("memory", "memory.max", "536870912"),
            new("memory", "memory.min", "268435456"),
        ], CgroupSettings.ForV2(Limited));
    }

    [Fact]
    public void V2_files_for_an_unlimited_VM()
    {
        Assert.Equal(
        [
            new("cpu", "cpu.weight", "200"),
            new("cpu", "cpu.max", "max 100000"),
            new("memory", "memory.max", "max"),
            new("memory", "memory.min", "0"),
        ], CgroupSettings.ForV2(VmResources.Default(2)));
    }

    [Fact]
    public void V1_files_for_a_limited_VM()
    {
        Assert.Equal(
        [
            new("cpu", "cpu.shares", "1024"),
            new("cpu", "cpu.cfs_period_us", "100000"),
            new("cpu", "cpu.cfs_quota_us", "250000"),
            new("memory", "memory.limit_in_bytes", "536870912"),
            new("memory", "memory.soft_limit_in_bytes", "268435456"),
        ], CgroupSettings.ForV1(Limited));
    }

    [Fact]
    public void A_CPU_limit_below_the_kernel_granularity_is_refused_with_the_minimum()
    {
        var error = Assert.Throws<ArgumentException>(() => CgroupSettings.ForV2(VmResources.Default(1) with { CpuLimitMillicores = 5 }));

        Assert.Contains("the smallest limit is 10m", error.Message);
        Assert.Equal("CpuLimitMillicores", error.ParamName);
    }

    [Fact]
    public void A_CPU_reservation_above_the_limit_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            (VmResources.Default(1) with { CpuLimitMillicores = 500, CpuReservationMillicores = 1000 }).Validate());

        Assert.Contains("CPU reservation 1000m exceeds the CPU limit 500m", error.Message);
    }
}
