using System.Diagnostics;
using System.Text;

namespace Vmk.Vmctl.Tests;

/// <summary>The real vmctl binary in a child process, with its stdout and stderr collected line by line.</summary>
internal sealed class VmctlProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Done)> _waiters = [];
    private readonly Lock _gate = new();

    private VmctlProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => OnLine(_stdout, e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(_stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "vmctl.dll");

    public int Pid => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_gate)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_gate)
            {
                return _stderr.ToString();
            }
        }
    }

    public static VmctlProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.Environment["COLUMNS"] = "200"; // tables as wide as their content, whatever the test runner's terminal
        psi.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return new VmctlProcess(Process.Start(psi)!);
    }

    /// <summary>Runs vmctl to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        using var p = Start(args);
        var code = await p.WaitForExitAsync(TimeSpan.FromMinutes(2));
        return (code, p.Stdout, p.Stderr);
    }

    public Task<string> WaitForStdoutLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            var seen = _stdout.ToString().Split('\n').FirstOrDefault(l => match(l.TrimEnd('\r')));
            if (seen is not null)
            {
                return Task.FromResult(seen);
            }
            _waiters.Add((match, tcs));
        }
        return tcs.Task.WaitAsync(timeout);
    }

    public void Signal(int signal) => _ = Kill(_process.Id, signal);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            // What vmctl said and where its threads sit, so that a hang can be read from the test log alone.
            throw new TimeoutException($"vmctl pid {Pid} did not exit within {timeout.TotalSeconds:0} s\n--- stderr:\n{Tail(Stderr)}\n--- threads:\n{ThreadStates(Pid)}");
        }
        _process.WaitForExit(); // drains the redirected streams
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    private static string Tail(string text, int lines = 40) => string.Join('\n', text.Split('\n').TakeLast(lines));

    private static string ThreadStates(int pid)
    {
        try
        {
            return string.Join('\n', Directory.EnumerateDirectories($"/proc/{pid}/task").Select(t =>
            {
                var comm = File.ReadAllText(Path.Combine(t, "comm")).Trim();
                var wchan = File.ReadAllText(Path.Combine(t, "wchan")).Trim();
                var state = File.ReadAllText(Path.Combine(t, "stat")).Split(") ")[1][..1];
                return $"{Path.GetFileName(t)} {comm} {state} {wchan}";
            }));
        }
        catch (IOException e)
        {
            return e.Message;
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int sig);

    private void OnLine(StringBuilder sink, string? line)
    {
        if (line is null)
        {
            return;
        }
        List<TaskCompletionSource<string>> done = [];
        lock (_gate)
        {
            sink.Append(line).Append('\n');
            if (sink != _stdout)
            {
                return;
            }
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Match(line))
                {
                    done.Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
            }
        }
        foreach (var d in done)
        {
            d.TrySetResult(line);
        }
    }
}
