namespace Vmk.Vmkernel.Vm;

/// <summary>
/// How the guest starts: direct kernel boot (Kernel set) or disk boot through firmware (Kernel null,
/// the first disk boots).
/// </summary>
public sealed record BootSpec
{
    public string? Kernel { get; init; }
    public string? Initrd { get; init; }
    public string? Cmdline { get; init; }
    public Firmware Firmware { get; init; } = Firmware.Bios;
}
