using Vmk.Vmkernel.Interop;

namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>
/// What one run of <see cref="KvmGuestLoop"/> found: a guest speed, or the step that failed.
/// <see cref="Transient"/> marks failures that may go away within the same boot (another hypervisor
/// holding VT-x, memory pressure), which must not be cached.
/// </summary>
internal sealed record KvmMeasurement(double? InstructionsPerSecond, long Instructions, TimeSpan Elapsed, string? Failure, bool Transient)
{
    public static KvmMeasurement Measured(double instructionsPerSecond, long instructions, TimeSpan elapsed) =>
        new(instructionsPerSecond, instructions, elapsed, null, false);

    public static KvmMeasurement Failed(string step, string devicePath, int errno) =>
        new(null, 0, TimeSpan.Zero, $"{step} on {devicePath} failed ({Libc.Describe(errno)})",
            errno is Libc.EBUSY or Libc.EAGAIN or Libc.ENOMEM or Libc.EINTR);

    public static KvmMeasurement UnexpectedExit(uint exitReason, string devicePath) =>
        new(null, 0, TimeSpan.Zero, $"the KVM test guest on {devicePath} stopped with exit reason {exitReason} instead of HLT", false);
}
