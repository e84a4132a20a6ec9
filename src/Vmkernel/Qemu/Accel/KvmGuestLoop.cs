using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmk.Vmkernel.Interop;

namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>
/// Runs a tiny real-mode guest through the raw KVM ioctls and measures how fast KVM executes it.
/// The guest is <c>l: dec ecx; jnz l; hlt</c> at guest-physical 0x1000 with ECX preset through
/// KVM_SET_REGS, so one run executes 2 * ECX + 1 instructions and then exits with KVM_EXIT_HLT.
///
/// The loop count starts small and grows eightfold only while a run finishes in under
/// <see cref="MinimumRunTime"/>: an emulated KVM (~1 M instructions/s) is identified by the very
/// first run (2,001 instructions, ~2 ms), while hardware-speed KVM climbs to a run long enough that
/// VM-entry overhead no longer dominates. Every step is bounded by the caller's deadline.
///
/// Structure layouts (x86-64, include/uapi/linux/kvm.h and arch/x86/include/uapi/asm/kvm.h):
/// kvm_userspace_memory_region = { u32 slot; u32 flags; u64 guest_phys_addr; u64 memory_size;
/// u64 userspace_addr } (32 bytes); kvm_regs = 18 x u64 (rax, rbx, rcx, ... rip at 128, rflags at 136;
/// 144 bytes); kvm_sregs = 8 x kvm_segment (24 bytes each, cs first: base u64 at 0, selector u16 at 12),
/// 2 x kvm_dtable, control registers, interrupt bitmap (312 bytes); kvm_run starts with
/// { u8 request_interrupt_window; u8 immediate_exit; u8 pad[6]; u32 exit_reason at 8 }.
/// </summary>
internal static class KvmGuestLoop
{
    public const int ExpectedApiVersion = 12;

    public static readonly TimeSpan MinimumRunTime = TimeSpan.FromMilliseconds(2);

    // _IO / _IOR / _IOW (dir << 30 | size << 16 | 'type' << 8 | nr) with KVMIO = 0xAE.
    public const uint KVM_GET_API_VERSION = 0xAE00;
    private const uint KVM_CREATE_VM = 0xAE01;
    private const uint KVM_GET_VCPU_MMAP_SIZE = 0xAE04;
    private const uint KVM_CREATE_VCPU = 0xAE41;
    private const uint KVM_SET_USER_MEMORY_REGION = 0x4020AE46;
    private const uint KVM_SET_TSS_ADDR = 0xAE47;
    private const uint KVM_RUN = 0xAE80;
    private const uint KVM_SET_REGS = 0x4090AE82;
    private const uint KVM_GET_SREGS = 0x8138AE83;
    private const uint KVM_SET_SREGS = 0x4138AE84;

    private const uint KVM_EXIT_HLT = 5;

    private const int RegsSize = 144;
    private const int SregsSize = 312;
    private const int RegsRcxOffset = 16;
    private const int RegsRipOffset = 128;
    private const int RegsRflagsOffset = 136;
    private const int SregsCsBaseOffset = 0;
    private const int SregsCsSelectorOffset = 12;
    private const int RunImmediateExitOffset = 1;
    private const int RunExitReasonOffset = 8;

    private const ulong GuestCodeAddress = 0x1000;
    private const int GuestMemorySize = 0x1000;

    // Real mode, 16-bit default operand size: 0x66 selects ECX.
    // 0: 66 49     dec ecx
    // 2: 75 FC     jnz 0     (rel8 -4 from the next instruction at 4)
    // 4: F4        hlt
    private static readonly byte[] GuestCode = [0x66, 0x49, 0x75, 0xFC, 0xF4];

    private const long InitialIterations = 1_000;
    private const long MaximumIterations = 1L << 30;

    /// <summary>
    /// Measures guest instructions per second. <paramref name="kvmFd"/> is an open /dev/kvm; it stays
    /// open (the caller owns it). Every VM, vCPU and mapping made here is released before returning.
    /// </summary>
    public static KvmMeasurement Measure(int kvmFd, string devicePath, DateTime deadlineUtc, Func<bool> abandoned)
    {
        int vmFd = -1, vcpuFd = -1;
        IntPtr memory = Libc.MapFailed, run = Libc.MapFailed;
        nuint runSize = 0;
        try
        {
            vmFd = Libc.Ioctl(kvmFd, KVM_CREATE_VM, 0);
            if (vmFd < 0)
            {
                return KvmMeasurement.Failed("KVM_CREATE_VM", devicePath, Marshal.GetLastPInvokeError());
            }

            // Intel CPUs without "unrestricted guest" need a TSS area to run real-mode code; elsewhere
            // this is a no-op, and its failure does not stop a guest that does not need it.
            Libc.Ioctl(vmFd, KVM_SET_TSS_ADDR, unchecked((nint)0xfffbd000));

            memory = Libc.Mmap(IntPtr.Zero, GuestMemorySize, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_SHARED | Libc.MAP_ANONYMOUS, -1, 0);
            if (memory == Libc.MapFailed)
            {
                return KvmMeasurement.Failed("mmap of guest memory", devicePath, Marshal.GetLastPInvokeError());
            }

            Marshal.Copy(GuestCode, 0, memory, GuestCode.Length);

            Span<byte> region = stackalloc byte[32];
            BinaryPrimitives.WriteUInt32LittleEndian(region[0..], 0);           // slot
            BinaryPrimitives.WriteUInt32LittleEndian(region[4..], 0);           // flags
            BinaryPrimitives.WriteUInt64LittleEndian(region[8..], GuestCodeAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(region[16..], GuestMemorySize);
            BinaryPrimitives.WriteUInt64LittleEndian(region[24..], (ulong)memory.ToInt64());
            if (IoctlWithBuffer(vmFd, KVM_SET_USER_MEMORY_REGION, region) < 0)
            {
                return KvmMeasurement.Failed("KVM_SET_USER_MEMORY_REGION", devicePath, Marshal.GetLastPInvokeError());
            }

            vcpuFd = Libc.Ioctl(vmFd, KVM_CREATE_VCPU, 0);
            if (vcpuFd < 0)
            {
                return KvmMeasurement.Failed("KVM_CREATE_VCPU", devicePath, Marshal.GetLastPInvokeError());
            }

            var mmapSize = Libc.Ioctl(kvmFd, KVM_GET_VCPU_MMAP_SIZE, 0);
            if (mmapSize <= 0)
            {
                return KvmMeasurement.Failed("KVM_GET_VCPU_MMAP_SIZE", devicePath, Marshal.GetLastPInvokeError());
            }

            runSize = (nuint)mmapSize;
            run = Libc.Mmap(IntPtr.Zero, runSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, vcpuFd, 0);
            if (run == Libc.MapFailed)
            {
                return KvmMeasurement.Failed("mmap of kvm_run", devicePath, Marshal.GetLastPInvokeError());
            }

            Span<byte> sregs = stackalloc byte[SregsSize];
            if (IoctlWithBuffer(vcpuFd, KVM_GET_SREGS, sregs) < 0)
            {
                return KvmMeasurement.Failed("KVM_GET_SREGS", devicePath, Marshal.GetLastPInvokeError());
            }

            BinaryPrimitives.WriteUInt64LittleEndian(sregs[SregsCsBaseOffset..], 0);
            BinaryPrimitives.WriteUInt16LittleEndian(sregs[SregsCsSelectorOffset..], 0);
            if (IoctlWithBuffer(vcpuFd, KVM_SET_SREGS, sregs) < 0)
            {
                return KvmMeasurement.Failed("KVM_SET_SREGS", devicePath, Marshal.GetLastPInvokeError());
            }

            var iterations = InitialIterations;
            while (true)
            {
                var step = RunLoop(vcpuFd, run, iterations, devicePath);
                if (step.Failure is not null)
                {
                    return step.Failure;
                }

                var instructions = (2 * iterations) + 1;
                var seconds = Math.Max(step.Elapsed.TotalSeconds, 1e-9);
                var speed = instructions / seconds;
                var remaining = deadlineUtc - DateTime.UtcNow;
                if (step.Elapsed >= MinimumRunTime || iterations >= MaximumIterations
                    || remaining <= step.Elapsed * 9 || abandoned())
                {
                    return KvmMeasurement.Measured(speed, instructions, step.Elapsed);
                }

                iterations *= 8;
            }
        }
        finally
        {
            if (run != Libc.MapFailed)
            {
                Libc.Munmap(run, runSize);
            }

            if (vcpuFd >= 0)
            {
                Libc.Close(vcpuFd);
            }

            if (vmFd >= 0)
            {
                Libc.Close(vmFd);
            }

            if (memory != Libc.MapFailed)
            {
                Libc.Munmap(memory, GuestMemorySize);
            }
        }
    }

    private static (TimeSpan Elapsed, KvmMeasurement? Failure) RunLoop(int vcpuFd, IntPtr run, long iterations, string devicePath)
    {
        Span<byte> regs = stackalloc byte[RegsSize];
        regs.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(regs[RegsRcxOffset..], (ulong)iterations);
        BinaryPrimitives.WriteUInt64LittleEndian(regs[RegsRipOffset..], GuestCodeAddress);
        BinaryPrimitives.WriteUInt64LittleEndian(regs[RegsRflagsOffset..], 0x2); // bit 1 is reserved-as-one
        if (IoctlWithBuffer(vcpuFd, KVM_SET_REGS, regs) < 0)
        {
            return (TimeSpan.Zero, KvmMeasurement.Failed("KVM_SET_REGS", devicePath, Marshal.GetLastPInvokeError()));
        }

        Marshal.WriteByte(run, RunImmediateExitOffset, 0);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (Libc.Ioctl(vcpuFd, KVM_RUN, 0) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR)
                {
                    continue;
                }

                return (clock.Elapsed, KvmMeasurement.Failed("KVM_RUN", devicePath, errno));
            }

            var exitReason = (uint)Marshal.ReadInt32(run, RunExitReasonOffset);
            if (exitReason == KVM_EXIT_HLT)
            {
                return (clock.Elapsed, null);
            }

            return (clock.Elapsed, KvmMeasurement.UnexpectedExit(exitReason, devicePath));
        }
    }

    private static unsafe int IoctlWithBuffer(int fd, uint request, Span<byte> buffer)
    {
        fixed (byte* pointer = buffer)
        {
            return Libc.Ioctl(fd, request, pointer);
        }
    }
}
