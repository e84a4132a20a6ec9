using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>CPU model and topology.</summary>
internal static class CpuArgs
{
    public static void Append(List<string> argv, VmSpec spec, QemuHostSettings host)
    {
        // KVM passes the host CPU through; TCG emulates "max", every feature it can.
        argv.AddRange(["-cpu", host.Accelerator == Accelerator.Kvm ? "host" : "max"]);
        var t = spec.Cpu;
        argv.AddRange(["-smp", $"cpus={t.VCpus},sockets={t.Sockets},cores={t.Cores},threads={t.Threads}"]);
    }
}
