using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

public class CgroupMountTests
{
    [Fact]
    public void Mountinfo_lines_give_cgroup_mounts_with_their_controllers()
    {
        string[] lines =
        [
            "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
            "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct",
            "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate",
            "41 30 0:38 / /mnt/with\\040space rw - cgroup cgroup rw,memory",
        ];

        var mounts = CgroupMount.Parse(lines);

        Assert.Equal(["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/unified", "/mnt/with space"], mounts.Select(m => m.MountPoint));
        Assert.True(mounts[0].SuperOptions.SetEquals(["rw", "cpu", "cpuacct"]));
        Assert.Equal("cgroup2", mounts[1].FileSystemType);
    }
}
