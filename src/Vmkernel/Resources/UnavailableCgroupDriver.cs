namespace Vmk.Vmkernel.Resources;

/// <summary>
/// A host where no cgroup hierarchy with writable cpu and memory controllers is available (for example
/// <c>vmctl vm run</c> as an ordinary user). VMs that ask for nothing beyond normal shares run without
/// a cgroup, as they would have anyway; a VM that asks for a limit, a reservation or other shares gets
/// an error instead of silently running unconstrained.
/// </summary>
internal sealed class UnavailableCgroupDriver(string why, string parentName) : CgroupDriver(parentName)
{
    public string Why { get; } = why;

    public override string Describe() => $"none ({Why})";

    public override IReadOnlyList<string> Directories(string vmId) => [];

    public override IReadOnlyList<string> ParentDirectories() => [];

    public override void EnsureParent()
    {
    }

    public override void Apply(string vmId, VmResources resources)
    {
        resources.Validate();
        if (!resources.IsUnconstrained)
        {
            throw new CgroupException(
                $"VM '{vmId}' asks for CPU shares {resources.CpuShares}, CPU limit {Show(resources.CpuLimitMillicores)}, " +
                $"memory limit {Show(resources.MemoryLimitBytes)}, memory reservation {Show(resources.MemoryReservationBytes)}, " +
                $"but this host has no usable cgroups ({Why}). Run the VMkernel as root on a host with the cpu and memory " +
                "cgroup controllers, or remove the VM's limits and reservations.");
        }
    }

    public override CgroupUsage ReadUsage(string vmId) =>
        throw new CgroupException($"VM '{vmId}' has no cgroup on this host ({Why}), so its usage is not measured");

    private static string Show(long? value) => value is { } v ? v.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none";
}
