using Vmk.Vmkernel.Qemu.Accel;

namespace Vmk.Vmkernel.Qemu;

/// <summary>Host-wide choices that shape every QEMU command line.</summary>
/// <param name="Accelerator">Chosen once per host by <see cref="AcceleratorProbe"/>.</param>
/// <param name="RunAsUser">Unprivileged user QEMU drops to after opening its files, or null to stay root.</param>
/// <param name="Sandbox">Enable QEMU's seccomp sandbox.</param>
/// <param name="TscKhz">
/// The host's TSC frequency. Under TCG the guest reads the host's TSC, and a loaded host makes the guest's own
/// calibration against the emulated PIT fail, after which Linux stalls; passing the rate spares it the calibration.
/// </param>
public sealed record QemuHostSettings(Accelerator Accelerator, string? RunAsUser = null, bool Sandbox = true, long? TscKhz = null);
