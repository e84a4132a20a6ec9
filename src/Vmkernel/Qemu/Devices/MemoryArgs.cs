using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Guest memory, in whole MiB as QEMU takes it.</summary>
internal static class MemoryArgs
{
    public static void Append(List<string> argv, VmSpec spec) => argv.AddRange(["-m", Size(spec)]);

    /// <summary>
    /// The same memory as an explicit backend that QEMU faults in at start with <paramref name="threads"/> threads
    /// (-mem-prealloc alone uses one per vCPU). Its id is the machine's own name for its RAM, which names the RAM
    /// block in the migration stream: a source started without it migrates into it (libvirt does the same).
    /// </summary>
    public static void AppendPreallocated(List<string> argv, VmSpec spec, int threads)
    {
        var id = spec.Machine switch
        {
            MachineType.Microvm => "microvm.ram",
            MachineType.Q35 => "pc.ram",
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Machine, "unknown machine type"),
        };
        argv.AddRange(["-object", $"memory-backend-ram,id={id},size={Size(spec)},prealloc=on,prealloc-threads={threads}", "-machine", $"memory-backend={id}"]);
    }

    private static string Size(VmSpec spec) => $"{(spec.MemoryBytes + (1 << 20) - 1) >> 20}M";
}
