using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>
/// A dotnet program of this repository (vmkerneld, vm-operator) started as its own process from the test's output
/// directory, its output collected; <see cref="StartAsync"/> returns once it printed its ready line.
/// </summary>
public sealed partial class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _readyPrefix;

    private ChildProcess(Process process, string readyPrefix)
    {
        _process = process;
        _readyPrefix = readyPrefix;
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string ReadyLine { get; private set; } = "";

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>The value of key=value in the ready line (e.g. grpc, metrics, health).</summary>
    public Uri Address(string key) =>
        new(ReadyLine.Split(' ').Single(p => p.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..]);

    /// <summary>Starts the program; waits for <paramref name="readyPrefix"/> unless it is null (then returns at once).</summary>
    public static async Task<ChildProcess> StartAsync(string dll, IEnumerable<string> args, string? readyPrefix, TimeSpan? deadline = null, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        info.Environment["Logging__LogLevel__Default"] = "Information";
        info.Environment.Remove("KUBECONFIG");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start " + dll);
        var child = new ChildProcess(process, readyPrefix ?? "\0");
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (readyPrefix is null)
        {
            return child;
        }
        var limit = deadline ?? TimeSpan.FromSeconds(90);
        var first = await Task.WhenAny(child._ready.Task, process.WaitForExitAsync(), Task.Delay(limit));
        if (first != child._ready.Task)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            throw new InvalidOperationException($"{dll} did not become ready within {limit.TotalSeconds} s (exited: {process.HasExited}); its output:\n{child.Output}");
        }
        child.ReadyLine = await child._ready.Task;
        return child;
    }

    public Task WaitForExitAsync(TimeSpan deadline) => _process.WaitForExitAsync().WaitAsync(deadline);

    /// <summary>A crash: SIGKILL, no chance to clean up.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>An orderly stop: SIGTERM and wait.</summary>
    public async Task TerminateAsync(TimeSpan deadline)
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(_process.Id, 15);
            await _process.WaitForExitAsync().WaitAsync(deadline);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
        if (line.StartsWith(_readyPrefix, StringComparison.Ordinal))
        {
            _ready.TrySetResult(line);
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);
}
