using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Resources;
using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Vm;

/// <summary>Host-wide settings and services every VM of one VMkernel shares.</summary>
internal sealed record VmRuntime(
    string QemuBinary,
    QemuHostSettings Qemu,
    ICgroupManager? Cgroups,
    ILoggerFactory LoggerFactory,
    TimeSpan ShutdownTimeout,
    TimeSpan StartTimeout,
    StorageStack Storage,
    TimeSpan DiskLeaseWait)
{
    /// <summary>The vSwitch that gives NICs on port groups their taps; null when the VMkernel runs without one.</summary>
    public Network.HostNetwork? Network { get; init; }

    /// <summary>This host's name: part of each VM's cgroup id (<see cref="VmCgroupNames"/>).</summary>
    public string HostName { get; init; } = "";
}
