namespace Vmk.Vmkernel.Vm;

/// <summary>Firmware for disk boot on <see cref="MachineType.Q35"/>.</summary>
public enum Firmware
{
    /// <summary>SeaBIOS, QEMU's default.</summary>
    Bios,

    /// <summary>OVMF (Debian package <c>ovmf</c>).</summary>
    Uefi,
}
