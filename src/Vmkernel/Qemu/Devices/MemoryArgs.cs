using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Guest memory: whole MiB under KVM; under TCG the same plus <see cref="TcgPadBytes"/> (see there).</summary>
internal static class MemoryArgs
{
    /// <summary>
    /// What a TCG guest gets on top of its whole MiB, so that live migration does not lose its writes.
    /// QEMU before 9.0 (upstream commit "physmem: Fix migration dirty bitmap coherency with TCG memory access";
    /// Debian 12 ships 7.2) has a fast path for syncing the dirty bitmap of a RAM block whose size is a multiple of
    /// 64 pages, and that path forgets to re-arm TCG's TLB: a store the guest makes after a sync, through a TLB entry
    /// filled while its page was dirty, marks nothing dirty, and the target resumes with the page as it was sent before.
    /// Seen here (bench/migrate-soak.sh --whole-mib) as 8 to 19 stale kernel pages after about one migration in 70,
    /// and as guests that panicked (a corrupt function pointer) or stopped ticking after a migration. A block 8 KiB past a whole MiB takes the slow
    /// path, which clears each dirty page's TLB entries. KVM tracks dirty pages in the kernel and needs none of this.
    /// </summary>
    public const long TcgPadBytes = 8 << 10;

    public static void Append(List<string> argv, VmSpec spec, QemuHostSettings host) => argv.AddRange(["-m", Size(spec, host)]);

    private static string Size(VmSpec spec, QemuHostSettings host)
    {
        var mib = (spec.MemoryBytes + (1 << 20) - 1) >> 20;
        return host.Accelerator == Accelerator.Tcg ? $"{(mib << 10) + (TcgPadBytes >> 10)}K" : $"{mib}M";
    }
}
