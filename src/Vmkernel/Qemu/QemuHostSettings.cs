using Vmk.Vmkernel.Qemu.Accel;

namespace Vmk.Vmkernel.Qemu;

/// <summary>Host-wide choices that shape every QEMU command line.</summary>
/// <param name="Accelerator">Chosen once per host by <see cref="AcceleratorProbe"/>.</param>
/// <param name="RunAsUser">Unprivileged user QEMU drops to after opening its files, or null to stay root.</param>
/// <param name="Sandbox">Enable QEMU's seccomp sandbox.</param>
public sealed record QemuHostSettings(Accelerator Accelerator, string? RunAsUser = null, bool Sandbox = true);
