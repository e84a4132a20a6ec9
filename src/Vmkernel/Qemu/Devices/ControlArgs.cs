using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Identity, the QMP control socket, pidfile, and the process's own confinement.</summary>
internal static class ControlArgs
{
    public static void AppendIdentity(List<string> argv, VmSpec spec) =>
        argv.AddRange(["-name", $"{spec.Name},process=vmk-{spec.Name},debug-threads=on"]);

    public static void AppendControl(List<string> argv, VmSpec spec, VmPaths paths, QemuHostSettings host)
    {
        argv.AddRange(["-qmp", $"unix:{QemuCommandLine.EscapeOptionValue(paths.QmpSocket)},server=on,wait=off"]);
        argv.AddRange(["-pidfile", paths.PidFile]);
        if (spec.StartPaused)
        {
            argv.Add("-S");
        }
        if (host.Sandbox)
        {
            // Deny what a VMM never needs: obsolete syscalls, spawning programs, changing resource limits.
            // QEMU installs its filter before -runas drops privileges, so set*id must stay allowed when it
            // has to drop them itself (measured with QEMU 7.2: "children" kills it with SIGSYS).
            var elevate = host.RunAsUser is null ? "deny" : "allow";
            argv.AddRange(["-sandbox", $"on,obsolete=deny,elevateprivileges={elevate},spawn=deny,resourcecontrol=deny"]);
        }
        if (host.RunAsUser is not null)
        {
            argv.AddRange(["-runas", host.RunAsUser]);
        }
    }
}
