using System.Diagnostics;
using System.Text;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu;

/// <summary>
/// One QEMU process, either started here or adopted from its pidfile after a VMkernel restart. QEMU runs in a
/// session of its own (setsid) with stdin/stdout detached and stderr in a file, so the process that started
/// it can exit, crash or be upgraded without taking the VM along.
/// </summary>
internal sealed class QemuProcess
{
    // The shell puts itself into the VM's cgroup before exec, so QEMU's first instruction already runs
    // confined; `setsid` then execs in place (the shell is not a process group leader, so no fork).
    private const string LaunchScript =
        "for f in $VMK_CGROUP_PROCS; do echo $$ > \"$f\" || exit 97; done; " +
        "exec setsid \"$@\" </dev/null >/dev/null 2>\"$VMK_STDERR\"";

    private readonly Process? _child;
    private readonly Lazy<Task> _exited;

    private QemuProcess(int pid, Process? child, string stderrLog)
    {
        Pid = pid;
        _child = child;
        StderrLog = stderrLog;
        _exited = new Lazy<Task>(WatchExitAsync);
    }

    public int Pid { get; }

    public string StderrLog { get; }

    /// <summary>Completes when the process has exited (and, if it is our child, has been reaped).</summary>
    public Task Exited => _exited.Value;

    public bool HasExited => Exited.IsCompleted;

    public static QemuProcess Launch(string binary, IReadOnlyList<string> argv, VmPaths paths, IReadOnlyList<string> cgroupProcsFiles)
    {
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(LaunchScript);
        psi.ArgumentList.Add("vmk-launch");
        psi.ArgumentList.Add(binary);
        foreach (var a in argv)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["VMK_CGROUP_PROCS"] = string.Join(' ', cgroupProcsFiles);
        psi.Environment["VMK_STDERR"] = paths.StderrLog;
        var child = Process.Start(psi) ?? throw new VmkernelException($"could not start {binary}");
        return new QemuProcess(child.Id, child, paths.StderrLog);
    }

    /// <summary>
    /// Finds the QEMU of a VM from its pidfile. Returns null when the pidfile is missing or the pid now belongs
    /// to another program (pids are reused): the command line must name this VM's QMP socket.
    /// </summary>
    public static QemuProcess? Adopt(VmPaths paths)
    {
        if (!File.Exists(paths.PidFile) || !int.TryParse(File.ReadAllText(paths.PidFile).Trim(), out var pid))
        {
            return null;
        }
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            if (!cmdline.Contains(paths.QmpSocket, StringComparison.Ordinal))
            {
                return null;
            }
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        return new QemuProcess(pid, null, paths.StderrLog);
    }

    public void Kill()
    {
        if (!HasExited)
        {
            ProcessInterop.kill(Pid, ProcessInterop.SIGKILL);
        }
    }

    /// <summary>The last lines QEMU wrote to stderr: the reason it failed, as QEMU puts it.</summary>
    public string StderrTail(int maxBytes = 2048) => ReadTail(StderrLog, maxBytes);

    internal static string ReadTail(string path, int maxBytes)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var start = Math.Max(0, f.Length - maxBytes);
            f.Seek(start, SeekOrigin.Begin);
            var buffer = new byte[f.Length - start];
            f.ReadExactly(buffer);
            return Encoding.UTF8.GetString(buffer).Trim();
        }
        catch (FileNotFoundException)
        {
            return "";
        }
    }

    private Task WatchExitAsync()
    {
        if (_child is not null)
        {
            return _child.WaitForExitAsync();
        }
        return Task.Factory.StartNew(() =>
        {
            var fd = ProcessInterop.PidfdOpen(Pid);
            if (fd < 0)
            {
                return; // already gone
            }
            try
            {
                // Blocks this dedicated thread, not the pool, until the process exits.
                while (!ProcessInterop.PollExited(fd, 60_000))
                {
                }
            }
            finally
            {
                ProcessInterop.close(fd);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }
}
