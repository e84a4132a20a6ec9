namespace Vmk.Vmkernel.Resources;

/// <summary>
/// cgroup v2: one tree. A controller is usable in a child only when every ancestor lists it in
/// cgroup.subtree_control, so the parent enables cpu and memory for its VMs.
/// </summary>
internal sealed class CgroupV2Driver(string mountPoint, string parentName) : CgroupDriver(parentName)
{
    private const string EnableControllers = "+cpu +memory";

    public string MountPoint { get; } = mountPoint;

    public override string Describe() => $"cgroup v2 (cpu, memory) at {MountPoint}";

    public override IReadOnlyList<string> Directories(string vmId) =>
        [Path.Combine(MountPoint, ParentName, VmDirectoryName(vmId))];

    public override IReadOnlyList<string> ParentDirectories() => [Path.Combine(MountPoint, ParentName)];

    public override void EnsureParent()
    {
        EnableForChildren(MountPoint);
        var parent = Path.Combine(MountPoint, ParentName);
        CgroupFs.MakeDirectory(parent);
        EnableForChildren(parent);
    }

    private static void EnableForChildren(string directory)
    {
        var enabled = CgroupFs.Read(Path.Combine(directory, "cgroup.subtree_control")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (!enabled.Contains("cpu") || !enabled.Contains("memory"))
        {
            CgroupFs.Write(Path.Combine(directory, "cgroup.subtree_control"), EnableControllers);
        }
    }

    public override void Apply(string vmId, VmResources resources)
    {
        var directory = Directories(vmId)[0];
        foreach (var setting in CgroupSettings.ForV2(resources))
        {
            CgroupFs.Write(Path.Combine(directory, setting.File), setting.Value);
        }
    }

    public override CgroupUsage ReadUsage(string vmId)
    {
        var directory = Directories(vmId)[0];
        var cpuStat = CgroupFs.ReadKeyed(Path.Combine(directory, "cpu.stat"));
        return new CgroupUsage(
            TimeSpan.FromTicks(cpuStat.GetValueOrDefault("usage_usec") * 10),
            CgroupFs.ReadNumber(Path.Combine(directory, "memory.current")),
            cpuStat.GetValueOrDefault("nr_periods"),
            cpuStat.GetValueOrDefault("nr_throttled"),
            TimeSpan.FromTicks(cpuStat.GetValueOrDefault("throttled_usec") * 10));
    }
}
