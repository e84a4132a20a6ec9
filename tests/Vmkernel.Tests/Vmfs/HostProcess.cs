using System.Collections.Concurrent;
using System.Diagnostics;

namespace Vmk.Vmkernel.Tests.Vmfs;

/// <summary>
/// A simulated host: the Vmfs.ProcessHost program in its own process, with its stdout lines collected so a test
/// can wait for an event. Killed (whole tree) on dispose, whatever happened.
/// </summary>
public sealed class HostProcess : IDisposable
{
    public const int SigKill = 9;
    public const int SigCont = 18;
    public const int SigStop = 19;

    private readonly Process _process;
    private readonly BlockingCollection<string> _lines = new();
    private readonly ConcurrentQueue<string> _all = new();

    private HostProcess(Process process)
    {
        _process = process;
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string Output => string.Join('\n', _all);

    public static HostProcess Start(IDictionary<string, string>? environment, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Vmfs.ProcessHost.dll");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var host = new HostProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                host._lines.CompleteAdding();
                return;
            }

            host._all.Enqueue(e.Data);
            host._lines.Add(e.Data);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                host._all.Enqueue("stderr: " + e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return host;
    }

    public static HostProcess Start(params string[] args) => Start(null, args);

    /// <summary>Waits for a line starting with <paramref name="prefix"/>; fails with the whole output if it never comes.</summary>
    public string WaitFor(string prefix, TimeSpan timeout)
    {
        return TryWaitFor(prefix, timeout) ?? throw new TimeoutException(
            $"process {Pid} did not print '{prefix}' within {timeout.TotalSeconds} s (exited: {_process.HasExited}). Output:\n{Output}");
    }

    /// <summary>The first line starting with <paramref name="prefix"/>, or null when the deadline passes or the process ends.</summary>
    public string? TryWaitFor(string prefix, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                return null;
            }

            try
            {
                if (!_lines.TryTake(out var line, left))
                {
                    return null;
                }

                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line;
                }
            }
            catch (InvalidOperationException)
            {
                return null; // stdout closed: the process ended
            }
        }
    }

    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    public void Signal(int signal)
    {
        if (Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {_process.Id} failed");
        }
    }

    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    /// <summary>
    /// Whether the kernel has ended the process, asked of the kernel itself (/proc): a killed process is a
    /// zombie, or gone, before .NET has reaped it and <see cref="HasExited"/> says so.
    /// </summary>
    public bool IsDead
    {
        get
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
                var state = stat[(stat.LastIndexOf(')') + 2)..][0];
                return state is 'Z' or 'X';
            }
            catch (IOException)
            {
                return true;
            }
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                Kill(_process.Id, SigCont);
                _process.Kill(entireProcessTree: true);
            }

            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        _lines.Dispose();
    }

    // The kill(1) utility rather than P/Invoke: the test project does not compile unsafe code.
    private static int Kill(int pid, int signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", $"{pid}"]) { UseShellExecute = false })!;
        kill.WaitForExit();
        return kill.ExitCode;
    }
}
