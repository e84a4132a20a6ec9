using System.Diagnostics;
using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

/// <summary>
/// Real cgroups on this machine under a parent unique to one test, plus the processes the test starts;
/// Dispose kills the processes and removes every cgroup, also when the test failed.
/// </summary>
internal sealed class CgroupTestHost : IDisposable
{
    private readonly List<Process> _processes = [];
    private readonly List<VmCgroup> _cgroups = [];

    public CgroupTestHost()
    {
        ParentName = $"vmk-test-{Guid.NewGuid():N}"[..22];
        Manager = CgroupManagerFactory.Detect(null, "/sys/fs/cgroup", ParentName, "/proc/self/mountinfo");
    }

    public string ParentName { get; }

    internal CgroupManager Manager { get; }

    public static string NewVmId() => $"t{Guid.NewGuid():N}"[..13];

    public VmCgroup Create(string vmId, VmResources resources)
    {
        var cgroup = Manager.Create(vmId, resources);
        _cgroups.Add(cgroup);
        return cgroup;
    }

    /// <summary>Starts <c>sh -c script</c>; the script's own pid is <c>$$</c>.</summary>
    public Process Start(string script)
    {
        var process = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", script]) { UseShellExecute = false })
            ?? throw new InvalidOperationException("sh did not start");
        _processes.Add(process);
        return process;
    }

    /// <summary>The VMkernel launcher's way in: the shell joins the cgroup itself, then runs <paramref name="commands"/> (usually exec).</summary>
    public Process StartInCgroup(VmCgroup cgroup, string commands)
    {
        var joins = string.Join("; ", cgroup.ProcsFiles.Select(file => $"echo $$ > {file}"));
        return Start($"set -e; {joins}; {commands}");
    }

    public static void Kill(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        process.WaitForExit();
    }

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            try
            {
                Kill(process);
            }
            catch (InvalidOperationException)
            {
                // Already reaped.
            }

            process.Dispose();
        }

        foreach (var cgroup in _cgroups)
        {
            cgroup.Delete();
        }

        Manager.TryDeleteParent();
    }
}
