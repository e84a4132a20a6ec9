namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>The accelerator a QEMU process is started with (<c>-machine ...,accel=</c>).</summary>
public enum Accelerator
{
    Kvm,
    Tcg,
}
