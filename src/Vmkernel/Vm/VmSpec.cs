using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Vm;

/// <summary>Everything the VMkernel needs to run one VM. Persisted as JSON in the VM's state directory.</summary>
public sealed record VmSpec
{
    /// <summary>Unique on the host: lowercase letters, digits and '-', at most 63 characters.</summary>
    public required string Name { get; init; }

    public MachineType Machine { get; init; } = MachineType.Microvm;

    public CpuTopology Cpu { get; init; } = new();

    public long MemoryBytes { get; init; } = 256L * 1024 * 1024;

    public BootSpec Boot { get; init; } = new();

    public IReadOnlyList<DiskSpec> Disks { get; init; } = [];

    public IReadOnlyList<NicSpec> Nics { get; init; } = [];

    /// <summary>CPU and memory shares, reservations and limits; null means Normal shares and no limits.</summary>
    public VmResources? Resources { get; init; }

    /// <summary>Start the VM paused (QEMU -S); used by incoming migration.</summary>
    public bool StartPaused { get; init; }
}
