namespace Vmk.Vmkernel.Vm;

/// <summary>
/// Where one VM's runtime files live: <c>&lt;state&gt;/vms/&lt;name&gt;/</c>. Everything needed to re-adopt a
/// running VM after the VMkernel restarts is here (spec, pidfile, QMP socket).
/// </summary>
public sealed record VmPaths(string Directory)
{
    /// <summary>Linux limits a unix socket path to 107 bytes (sun_path is 108 with the terminating NUL).</summary>
    public const int MaxSocketPathLength = 107;

    public string SpecFile => Path.Combine(Directory, "spec.json");
    public string StateFile => Path.Combine(Directory, "state.json");
    public string PidFile => Path.Combine(Directory, "qemu.pid");
    public string QmpSocket => Path.Combine(Directory, "qmp.sock");
    public string ConsoleSocket => Path.Combine(Directory, "console.sock");
    public string ConsoleLog => Path.Combine(Directory, "console.log");
    public string StderrLog => Path.Combine(Directory, "qemu.stderr.log");

    public static VmPaths For(string stateDirectory, string vmName) =>
        new(Path.Combine(stateDirectory, "vms", vmName));
}
