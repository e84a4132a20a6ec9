namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>
/// The accelerator chosen for this host and why, in one sentence a person understands (with the measured
/// guest speed when there was a measurement). Shown in logs and on the Host status.
/// </summary>
public sealed record AcceleratorChoice(Accelerator Accelerator, string Reason);
