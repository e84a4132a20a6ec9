using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// One standalone child (a vmkerneld or the operator), supervised the way systemd or the kubelet would: its output
/// goes to a log file (and to the console when it is a warning or worse, or with --verbose); it is ready when it
/// prints its ready line; a crash is reported with its last lines and, when <see cref="Restart"/> is set, it is
/// started again with a growing back-off. Children get SIGKILL when vmctl dies (setpriv --pdeathsig) and run in a
/// session of their own, so a Ctrl-C in the terminal reaches vmctl only and the stop order stays vmctl's.
/// </summary>
internal sealed partial class SupervisedProcess : IAsyncDisposable
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    private readonly ChildCommand _command;
    private readonly string _readyPrefix;
    private readonly StreamWriter _log;
    private readonly ILogger _logger;
    private readonly bool _verbose;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Queue<string> _tail = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource<string> _firstReady = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Process? _process;
    private bool _showingEntry;
    private Task? _loop;

    public SupervisedProcess(string name, ChildCommand command, string readyPrefix, string logPath, ILogger logger, bool verbose, bool restart)
    {
        Name = name;
        _command = command;
        _readyPrefix = readyPrefix;
        _logger = logger;
        _verbose = verbose;
        Restart = restart;
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        _log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        LogPath = logPath;
    }

    public string Name { get; }

    public string LogPath { get; }

    public bool Restart { get; }

    /// <summary>The last ready line (its addresses), updated on every restart.</summary>
    public string? ReadyLine { get; private set; }

    public int? Pid
    {
        get
        {
            lock (_gate)
            {
                return _process is { HasExited: false } p ? p.Id : null;
            }
        }
    }

    public int Starts { get; private set; }

    /// <summary>Raised with the ready line each time the child (re)starts and reports ready.</summary>
    public event Action<SupervisedProcess>? Ready;

    public void Start() => _loop = Task.Run(SuperviseAsync);

    /// <summary>Waits for the first ready line; fails with the child's last output when it does not come in time.</summary>
    public async Task<string> WaitReadyAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            return await _firstReady.Task.WaitAsync(timeout, ct);
        }
        catch (TimeoutException)
        {
            throw new StandaloneException($"{Name} did not report ready within {timeout.TotalSeconds:0} s; its last output (full log: {LogPath}):\n{Tail()}");
        }
    }

    /// <summary>An orderly stop: SIGTERM, then SIGKILL after <paramref name="grace"/>. No restart afterwards.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        await _stopping.CancelAsync();
        Process? p;
        lock (_gate)
        {
            p = _process;
        }
        try
        {
            if (p is not null && !p.HasExited)
            {
                _ = SendSignal(p.Id, 15);
                try
                {
                    await p.WaitForExitAsync().WaitAsync(grace);
                }
                catch (TimeoutException)
                {
                    _logger.LogWarning("{Name} did not stop within {Seconds} s of SIGTERM; killing it", Name, grace.TotalSeconds);
                    p.Kill(entireProcessTree: true);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // It exited (and the supervising loop let go of it) between the look and the signal.
        }
        if (_loop is not null)
        {
            await _loop;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(30));
        _log.Dispose();
        _stopping.Dispose();
    }

    public string Tail()
    {
        lock (_tail)
        {
            return string.Join('\n', _tail);
        }
    }

    private async Task SuperviseAsync()
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!_stopping.IsCancellationRequested)
        {
            Process process;
            try
            {
                process = await ChildSpawner.StartAsync(StartInfo());
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                _firstReady.TrySetException(new StandaloneException($"cannot start {Name} ({_command}): {e.Message}"));
                _logger.LogError("Cannot start {Name} ({Command}): {Error}", Name, _command, e.Message);
                return;
            }
            lock (_gate)
            {
                _process = process;
            }
            lock (_tail)
            {
                _tail.Clear();
            }
            Starts++;
            var started = DateTime.UtcNow;
            WriteLog($"---- {DateTime.UtcNow:O} started pid {process.Id}: {_command}");
            process.OutputDataReceived += (_, e) => OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => OnLine(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await process.WaitForExitAsync();
            var code = process.ExitCode;
            WriteLog($"---- {DateTime.UtcNow:O} exited with code {code}");
            lock (_gate)
            {
                _process = null;
            }
            process.Dispose();
            if (_stopping.IsCancellationRequested)
            {
                return;
            }
            // Not asked to stop: a crash. Say so loudly, with what it said last.
            var signal = code > 128 ? $" (signal {code - 128})" : "";
            _logger.LogError("{Name} exited unexpectedly with code {Code}{Signal}; last output (full log: {Log}):\n{Tail}", Name, code, signal, LogPath, Tail());
            if (!_firstReady.Task.IsCompleted && !Restart)
            {
                _firstReady.TrySetException(new StandaloneException($"{Name} exited with code {code} before it was ready; its last output (full log: {LogPath}):\n{Tail()}"));
            }
            if (!Restart)
            {
                return;
            }
            // A child that ran a while before dying starts again soon; one that dies at once backs off.
            backoff = DateTime.UtcNow - started > TimeSpan.FromMinutes(1) ? TimeSpan.FromSeconds(1) : TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            _logger.LogWarning("Restarting {Name} in {Seconds:0.#} s", Name, backoff.TotalSeconds);
            try
            {
                await Task.Delay(backoff, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private System.Diagnostics.ProcessStartInfo StartInfo()
    {
        var info = new System.Diagnostics.ProcessStartInfo("setsid")
        {
            RedirectStandardInput = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] prefix = ["setpriv", "--pdeathsig", "KILL", "--"];
        // CgroupRemount says why the cgroup hierarchies are mounted again inside `ip netns exec`.
        string[] netns = _command.NetworkNamespace is null
            ? []
            : ["ip", "netns", "exec", _command.NetworkNamespace, "sh", "-c", CgroupRemount.Script() + "exec \"$@\"", "sh"];
        foreach (var a in (string[])[.. prefix, .. netns, _command.FileName, .. _command.Arguments])
        {
            info.ArgumentList.Add(a);
        }
        info.Environment["DOTNET_NOLOGO"] = "1";
        return info;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        WriteLog(line);
        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 15)
            {
                _tail.Dequeue();
            }
        }
        // The console formatter writes "warn: Category[0]" and the message indented on the next line(s).
        if (!line.StartsWith(' '))
        {
            _showingEntry = IsWarningOrWorse(line);
        }
        if (_verbose || _showingEntry)
        {
            Console.Error.WriteLine($"[{Name}] {line}");
        }
        if (line.StartsWith(_readyPrefix, StringComparison.Ordinal))
        {
            ReadyLine = line;
            _firstReady.TrySetResult(line);
            Ready?.Invoke(this);
        }
    }

    private void WriteLog(string line)
    {
        lock (_log)
        {
            _log.WriteLine(line);
        }
    }

    /// <summary>The console formatter's level tags (warn, fail, crit) and what an unhandled exception prints.</summary>
    private static bool IsWarningOrWorse(string line) =>
        line.StartsWith("warn:", StringComparison.Ordinal) || line.StartsWith("fail:", StringComparison.Ordinal)
        || line.StartsWith("crit:", StringComparison.Ordinal) || line.StartsWith("Unhandled exception", StringComparison.Ordinal)
        || line.Contains(" warn: ", StringComparison.Ordinal) || line.Contains(" fail: ", StringComparison.Ordinal) || line.Contains(" crit: ", StringComparison.Ordinal);

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);
}
