using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Vmk.NodeDaemon.Tests;

/// <summary>
/// vmkerneld in its own process, as production runs it. Its output is collected (and shown when a test fails
/// through <see cref="Output"/>); the gRPC and metrics addresses come from its ready line, as it binds port 0.
/// </summary>
public sealed partial class DaemonProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyDeadline = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private DaemonProcess(Process process)
    {
        _process = process;
    }

    public Uri GrpcAddress { get; private set; } = null!;

    public Uri MetricsAddress { get; private set; } = null!;

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

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

    public static async Task<DaemonProcess> StartAsync(IEnumerable<string> args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "vmkerneld.dll");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        info.Environment["Logging__LogLevel__Default"] = "Information";
        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start vmkerneld");
        var daemon = new DaemonProcess(process);
        process.OutputDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        var ready = daemon._ready.Task;
        var first = await Task.WhenAny(ready, exited, Task.Delay(ReadyDeadline));
        if (first != ready)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            throw new InvalidOperationException($"vmkerneld did not become ready within {ReadyDeadline.TotalSeconds} s (exited: {process.HasExited}); its output:\n{daemon.Output}");
        }
        var line = await ready;
        foreach (var part in line.Split(' '))
        {
            if (part.StartsWith("grpc=", StringComparison.Ordinal))
            {
                daemon.GrpcAddress = new Uri(part["grpc=".Length..]);
            }
            else if (part.StartsWith("metrics=", StringComparison.Ordinal))
            {
                daemon.MetricsAddress = new Uri(part["metrics=".Length..]);
            }
        }
        return daemon;
    }

    /// <summary>A crash: SIGKILL, no chance to clean up.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>An orderly stop, as systemd or the kubelet does it: SIGTERM and wait.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(_process.Id, 15);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    public int ExitCode => _process.ExitCode;

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
        if (line.StartsWith("vmkerneld ready ", StringComparison.Ordinal))
        {
            _ready.TrySetResult(line);
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);
}
