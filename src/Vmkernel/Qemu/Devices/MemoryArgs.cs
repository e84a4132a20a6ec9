using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Guest memory, in whole MiB as QEMU takes it.</summary>
internal static class MemoryArgs
{
    public static void Append(List<string> argv, VmSpec spec)
    {
        var mib = (spec.MemoryBytes + (1 << 20) - 1) >> 20;
        argv.AddRange(["-m", $"{mib}M"]);
    }
}
