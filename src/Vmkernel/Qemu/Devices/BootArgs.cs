using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Direct kernel boot, or firmware for disk boot.</summary>
internal static class BootArgs
{
    /// <summary>Debian's OVMF build (package <c>ovmf</c>).</summary>
    public const string OvmfCode = "/usr/share/OVMF/OVMF_CODE.fd";

    public static void Append(List<string> argv, VmSpec spec)
    {
        var boot = spec.Boot;
        if (boot.Kernel is not null)
        {
            argv.AddRange(["-kernel", boot.Kernel]);
            if (boot.Initrd is not null)
            {
                argv.AddRange(["-initrd", boot.Initrd]);
            }
            if (!string.IsNullOrEmpty(boot.Cmdline))
            {
                argv.AddRange(["-append", boot.Cmdline]);
            }
            return;
        }
        if (boot.Firmware == Firmware.Uefi)
        {
            // Code only, read-only: the guest gets no persistent UEFI variables yet.
            argv.AddRange(["-drive", $"if=pflash,format=raw,unit=0,readonly=on,file={QemuCommandLine.EscapeOptionValue(OvmfCode)}"]);
        }
    }
}
