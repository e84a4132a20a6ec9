using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

/// <summary>A root with no cgroups under it stands for a host (or a user) without usable cgroups.</summary>
public sealed class UnavailableCgroupsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("vmk-nocg-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Without_usable_cgroups_a_VM_with_a_limit_is_refused_with_the_reason()
    {
        var manager = CgroupManagerFactory.Detect(null, _root);

        var error = Assert.Throws<CgroupException>(() => manager.Create("web-1", VmResources.Default(1) with { MemoryLimitBytes = 1 << 30 }));

        Assert.StartsWith("none (", manager.Describe());
        Assert.Contains($"no cgroup v2 mounted under {_root}", manager.Describe());
        Assert.Contains("VM 'web-1' asks for", error.Message);
        Assert.Contains("memory limit 1073741824", error.Message);
        Assert.Contains("Run the VMkernel as root", error.Message);
    }

    [Fact]
    public void Without_usable_cgroups_a_VM_with_default_resources_runs_without_a_cgroup()
    {
        var manager = CgroupManagerFactory.Detect(null, _root);

        var cgroup = manager.Create("web-1", VmResources.Default(2));

        Assert.Empty(cgroup.ProcsFiles);
        Assert.Throws<CgroupException>(cgroup.ReadUsage);
        Assert.True(cgroup.Delete());
    }
}
