using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

public class SharesTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void High_Normal_Low_are_4_2_1_per_vCPU_as_in_ESXi(int vcpus)
    {
        var high = CpuShares.ForLevel(SharesLevel.High, vcpus);
        var normal = CpuShares.ForLevel(SharesLevel.Normal, vcpus);
        var low = CpuShares.ForLevel(SharesLevel.Low, vcpus);

        Assert.Equal((2000 * vcpus, 1000 * vcpus, 500 * vcpus), (high.Value, normal.Value, low.Value));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void The_kernel_weights_keep_4_2_1_in_both_cgroup_versions(int vcpus)
    {
        var levels = new[] { SharesLevel.High, SharesLevel.Normal, SharesLevel.Low }.Select(level => CpuShares.ForLevel(level, vcpus)).ToList();

        var v1 = levels.Select(CgroupSettings.V1CpuShares).ToList();
        var v2 = levels.Select(CgroupSettings.V2CpuWeight).ToList();

        Assert.Equal([4 * v1[2], 2 * v1[2], v1[2]], v1);
        Assert.Equal([4 * v2[2], 2 * v2[2], v2[2]], v2);
    }

    [Fact]
    public void One_normal_vCPU_weighs_the_same_as_any_default_cgroup()
    {
        var normal = CpuShares.ForLevel(SharesLevel.Normal, 1);

        Assert.Equal(1024, CgroupSettings.V1CpuShares(normal));
        Assert.Equal(100, CgroupSettings.V2CpuWeight(normal));
    }

    [Fact]
    public void Custom_shares_beyond_the_kernel_range_are_clamped_not_refused()
    {
        Assert.Equal(2, CgroupSettings.V1CpuShares(CpuShares.Custom(1)));
        Assert.Equal(1, CgroupSettings.V2CpuWeight(CpuShares.Custom(1)));
        Assert.Equal(262_144, CgroupSettings.V1CpuShares(CpuShares.Custom(1_000_000)));
        Assert.Equal(10_000, CgroupSettings.V2CpuWeight(CpuShares.Custom(1_000_000)));
    }

    [Fact]
    public void Custom_shares_outside_ESXi_range_are_refused_with_the_range()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => CpuShares.Custom(0));

        Assert.Contains("between 1 and 1000000", error.Message);
    }

    [Fact]
    public void The_custom_level_has_no_per_vCPU_figure()
    {
        var error = Assert.Throws<ArgumentException>(() => CpuShares.ForLevel(SharesLevel.Custom, 2));

        Assert.Contains("CpuShares.Custom", error.Message);
    }
}
