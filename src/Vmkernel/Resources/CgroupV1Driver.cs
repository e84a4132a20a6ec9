namespace Vmk.Vmkernel.Resources;

/// <summary>
/// cgroup v1: one hierarchy per controller (cpu, cpuacct and memory may be mounted separately or
/// together), so a VM's cgroup is one directory per distinct hierarchy and a process joins each.
/// </summary>
internal sealed class CgroupV1Driver(IReadOnlyDictionary<string, string> mountPoints, string parentName) : CgroupDriver(parentName)
{
    public static readonly string[] RequiredControllers = ["cpu", "cpuacct", "memory"];

    public override string Describe()
    {
        var hierarchies = mountPoints.GroupBy(pair => pair.Value, pair => pair.Key)
            .Select(group => string.Join(",", group.OrderBy(name => name, StringComparer.Ordinal)));
        return $"cgroup v1 ({string.Join("; ", hierarchies)})";
    }

    private string ControllerDirectory(string controller, string vmId) =>
        Path.Combine(mountPoints[controller], ParentName, VmDirectoryName(vmId));

    public override IReadOnlyList<string> Directories(string vmId) =>
        RequiredControllers.Select(controller => ControllerDirectory(controller, vmId)).Distinct(StringComparer.Ordinal).ToList();

    public override IReadOnlyList<string> ParentDirectories() =>
        RequiredControllers.Select(controller => Path.Combine(mountPoints[controller], ParentName)).Distinct(StringComparer.Ordinal).ToList();

    public override void EnsureParent()
    {
        foreach (var directory in ParentDirectories())
        {
            CgroupFs.MakeDirectory(directory);
        }
    }

    public override void Apply(string vmId, VmResources resources)
    {
        foreach (var setting in CgroupSettings.ForV1(resources))
        {
            CgroupFs.Write(Path.Combine(ControllerDirectory(setting.Controller, vmId), setting.File), setting.Value);
        }
    }

    public override CgroupUsage ReadUsage(string vmId)
    {
        var cpuStat = CgroupFs.ReadKeyed(Path.Combine(ControllerDirectory("cpu", vmId), "cpu.stat"));
        var usageNanoseconds = CgroupFs.ReadNumber(Path.Combine(ControllerDirectory("cpuacct", vmId), "cpuacct.usage"));
        var memory = CgroupFs.ReadNumber(Path.Combine(ControllerDirectory("memory", vmId), "memory.usage_in_bytes"));
        return new CgroupUsage(
            TimeSpan.FromTicks(usageNanoseconds / 100),
            memory,
            cpuStat.GetValueOrDefault("nr_periods"),
            cpuStat.GetValueOrDefault("nr_throttled"),
            TimeSpan.FromTicks(cpuStat.GetValueOrDefault("throttled_time") / 100));
    }
}
