using System.Diagnostics;
using System.Text;

namespace Vmk.Vmkernel.Tests.Qemu.Qmp;

/// <summary>
/// A real, guest-less QEMU (TCG, stopped at start with -S) serving QMP on a unique unix socket. Disposing kills it
/// and removes its directory, whatever state the test left it in.
/// </summary>
internal sealed class QmpTestQemu : IAsyncDisposable
{
    private readonly StringBuilder _stderr = new();
    private Process? _process;

    public QmpTestQemu()
    {
        Directory = Path.Combine(Path.GetTempPath(), "vmk-qmp-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(Directory);
        SocketPath = Path.Combine(Directory, "qmp.sock");
    }

    public string Directory { get; }

    public string SocketPath { get; }

    public Process Process => _process ?? throw new InvalidOperationException("QEMU was not started");

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public void Start()
    {
        var start = new ProcessStartInfo("qemu-system-x86_64")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[]
        {
            "-machine", "microvm,accel=tcg", "-nodefaults", "-no-user-config", "-display", "none", "-S",
            "-qmp", $"unix:{SocketPath},server=on,wait=off",
        })
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            _process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("qemu-system-x86_64 is not installed: run `apt-get install qemu-system-x86`.", e);
        }

        _process.ErrorDataReceived += (_, e) =>
        {
            lock (_stderr)
            {
                _stderr.AppendLine(e.Data);
            }
        };
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    /// <summary>The version `qemu-system-x86_64 --version` reports, e.g. "7.2.22".</summary>
    public static string InstalledVersion()
    {
        using var version = Process.Start(new ProcessStartInfo("qemu-system-x86_64", "--version") { RedirectStandardOutput = true })!;
        string output = version.StandardOutput.ReadToEnd();
        version.WaitForExit();
        // "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
        return output.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3];
    }

    /// <summary>Freezes QEMU with SIGSTOP and waits until the kernel reports it stopped, so it can answer nothing.</summary>
    public async Task FreezeAsync(TimeSpan deadline)
    {
        using (var kill = Process.Start("kill", ["-STOP", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
            if (kill.ExitCode != 0)
            {
                throw new InvalidOperationException($"kill -STOP {Process.Id} failed");
            }
        }

        var stopwatch = Stopwatch.StartNew();
        while (ProcessState() != 'T')
        {
            if (stopwatch.Elapsed > deadline)
            {
                throw new TimeoutException($"QEMU {Process.Id} did not stop within {deadline}");
            }

            await Task.Yield();
        }
    }

    // /proc/<pid>/stat: "pid (comm) S ..." - the state letter follows the last ')'.
    private char ProcessState()
    {
        string stat = File.ReadAllText($"/proc/{Process.Id}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                }

                await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            }
            finally
            {
                _process.Dispose();
            }
        }

        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
