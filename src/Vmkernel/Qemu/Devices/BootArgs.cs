using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Direct kernel boot, or firmware for disk boot.</summary>
internal static class BootArgs
{
    /// <summary>Debian's OVMF build (package <c>ovmf</c>).</summary>
    public const string OvmfCode = "/usr/share/OVMF/OVMF_CODE.fd";

    public static void Append(List<string> argv, VmSpec spec, QemuHostSettings host)
    {
        var boot = spec.Boot;
        if (boot.Kernel is not null)
        {
            argv.AddRange(["-kernel", boot.Kernel]);
            if (boot.Initrd is not null)
            {
                argv.AddRange(["-initrd", boot.Initrd]);
            }
            var cmdline = host.Accelerator == Accelerator.Tcg ? WithTcgClock(boot.Cmdline ?? "", host.TscKhz) : boot.Cmdline;
            if (!string.IsNullOrEmpty(cmdline))
            {
                argv.AddRange(["-append", cmdline]);
            }
            return;
        }
        if (boot.Firmware == Firmware.Uefi)
        {
            // Code only, read-only: the guest gets no persistent UEFI variables yet.
            argv.AddRange(["-drive", $"if=pflash,format=raw,unit=0,readonly=on,file={QemuCommandLine.EscapeOptionValue(OvmfCode)}"]);
        }
    }

    /// <summary>
    /// A Linux guest under TCG stalls in TSC calibration when the host is busy (measured here: no boot in 90 s
    /// with 10 runnable processes on 2 cores; 13 s with these). Parameters the user already set are kept.
    /// </summary>
    internal static string WithTcgClock(string cmdline, long? tscKhz)
    {
        var words = cmdline.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (!words.Any(w => w.StartsWith("tsc=", StringComparison.Ordinal)))
        {
            words.Add("tsc=reliable");
        }
        if (tscKhz is long khz && !words.Any(w => w.StartsWith("tsc_early_khz=", StringComparison.Ordinal)))
        {
            words.Add($"tsc_early_khz={khz}");
        }
        return string.Join(' ', words);
    }
}
