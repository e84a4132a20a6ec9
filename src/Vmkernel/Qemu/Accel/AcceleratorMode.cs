namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>What the configuration asks for: let the probe decide, or force one accelerator.</summary>
public enum AcceleratorMode
{
    /// <summary>Use KVM only when it runs guest code at hardware speed, TCG otherwise.</summary>
    Auto,

    /// <summary>KVM or an error: never silently falls back.</summary>
    Kvm,

    /// <summary>QEMU's software translator; works everywhere.</summary>
    Tcg,
}
