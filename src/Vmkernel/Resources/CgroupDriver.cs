namespace Vmk.Vmkernel.Resources;

/// <summary>
/// One cgroup layout (v1 hierarchies per controller, v2 unified tree, or none): where a VM's cgroup
/// lives and how settings and usage map onto its files. <see cref="CgroupManager"/> and
/// <see cref="VmCgroup"/> hold the logic common to all of them.
/// </summary>
internal abstract class CgroupDriver(string parentName)
{
    public string ParentName { get; } = parentName;

    public abstract string Describe();

    /// <summary>Every directory that makes up the VM's cgroup, the one <see cref="VmCgroup.Processes"/> reads first.</summary>
    public abstract IReadOnlyList<string> Directories(string vmId);

    public abstract IReadOnlyList<string> ParentDirectories();

    public IReadOnlyList<string> ProcsFiles(string vmId) =>
        Directories(vmId).Select(directory => Path.Combine(directory, "cgroup.procs")).ToList();

    /// <summary>Creates the parent cgroup(s) and whatever they need so children can use the controllers.</summary>
    public abstract void EnsureParent();

    public abstract void Apply(string vmId, VmResources resources);

    public abstract CgroupUsage ReadUsage(string vmId);

    /// <summary>Directory name of a VM's cgroup; "vm-" keeps ids from colliding with control files.</summary>
    public static string VmDirectoryName(string vmId) => $"vm-{vmId}";
}
