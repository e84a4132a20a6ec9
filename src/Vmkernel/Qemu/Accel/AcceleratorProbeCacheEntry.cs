namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>One probe result as stored in the per-boot cache file.</summary>
internal sealed record AcceleratorProbeCacheEntry(
    string BootId,
    string DevicePath,
    Accelerator Accelerator,
    string Reason,
    double? InstructionsPerSecond,
    DateTime ProbedAtUtc);
