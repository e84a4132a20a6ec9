namespace Vmk.Vmkernel.Resources;

/// <summary>
/// Per-VM cgroups under one parent ("vmkernel"), a sibling of the daemon's own cgroup so that
/// restarting the daemon never takes its VMs' processes with it.
/// </summary>
public interface ICgroupManager
{
    /// <summary>Creates (or re-opens, idempotent) the VM's cgroup and applies <paramref name="resources"/>.</summary>
    VmCgroup Create(string vmId, VmResources resources);

    /// <summary>The VM's existing cgroup, for re-adoption; null when there is none.</summary>
    VmCgroup? Open(string vmId);

    /// <summary>Which cgroup version and controllers are in use, e.g. "cgroup v1 (cpu, cpuacct, memory)".</summary>
    string Describe();
}
