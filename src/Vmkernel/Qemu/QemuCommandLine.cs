using Vmk.Vmkernel.Qemu.Devices;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu;

/// <summary>
/// The one place where a <see cref="VmSpec"/> becomes QEMU's argv. Each device kind contributes its own
/// arguments from its own file under <c>Devices/</c>; this type only fixes their order. Pure: no I/O, so it
/// is tested as data.
/// </summary>
public static class QemuCommandLine
{
    public const string DefaultBinary = "qemu-system-x86_64";

    public static IReadOnlyList<string> Build(VmSpec spec, VmPaths paths, QemuHostSettings host)
    {
        var argv = new List<string>(64);
        ControlArgs.AppendIdentity(argv, spec);
        MachineArgs.Append(argv, spec, host);
        CpuArgs.Append(argv, spec, host);
        MemoryArgs.Append(argv, spec, host);
        BootArgs.Append(argv, spec, host);
        for (var i = 0; i < spec.Disks.Count; i++)
        {
            DiskArgs.Append(argv, spec, spec.Disks[i], bootIndex: i == 0 && spec.Boot.Kernel is null ? 1 : null);
        }
        foreach (var nic in spec.Nics)
        {
            NicArgs.Append(argv, spec, nic);
        }
        SerialArgs.Append(argv, paths);
        ControlArgs.AppendControl(argv, spec, paths, host);
        return argv;
    }

    /// <summary>
    /// What a live migration's target adds to <see cref="Build"/>: it waits for the stream (the address is set later
    /// through QMP, <c>migrate-incoming</c>). Its memory is the same <c>-m</c> as the source's and is faulted in as
    /// the stream's pages arrive, overlapped with the transfer: faulting the whole guest in before the transfer
    /// (<c>prealloc=on</c>, sessions 4 to 8) put that cost in line ahead of it (docs/migration.md, Figures).
    /// </summary>
    public static IReadOnlyList<string> IncomingMigrationArgs() => ["-incoming", "defer"];

    /// <summary>Renders argv as one shell line a person can paste (benchmarks print it).</summary>
    public static string ToShellLine(string binary, IEnumerable<string> argv) =>
        string.Join(' ', new[] { binary }.Concat(argv).Select(ShellQuote));

    internal static string ShellQuote(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=,:@%+".Contains(c))
            ? s
            : "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>QEMU option values separate keys with ',' and escape a literal ',' by doubling it.</summary>
    internal static string EscapeOptionValue(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
