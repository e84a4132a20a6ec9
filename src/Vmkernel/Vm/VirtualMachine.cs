using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Qmp;
using Vmk.Vmkernel.Resources;
using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Vm;

/// <summary>
/// One VM and the state machine that drives its QEMU. Commands (start, shutdown, stop, kill, reset, pause,
/// resume) run one at a time; QMP events and QEMU's exit move the state in between. The state survives in
/// <c>state.json</c> so that a new VMkernel can tell a VM that was stopped from one that died unwatched.
/// </summary>
public sealed class VirtualMachine : IAsyncDisposable
{
    private static readonly JsonSerializerOptions StateJson = new() { WriteIndented = true };

    private readonly VmRuntime _runtime;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _commands = new(1, 1);
    private readonly Lock _gate = new();
    private readonly List<(Func<VmStatus, bool> Match, TaskCompletionSource<VmStatus> Done)> _waiters = [];
    private VmStatus _status;
    private QemuProcess? _process;
    private QmpClient? _qmp;
    private SerialConsole? _console;
    private VmCgroup? _cgroup;
    private CancellationTokenSource? _watch;
    private bool _exitExpected;
    private bool _guestPoweredOff;
    private bool _detached;
    private string? _exitReason;
    private string? _migration;
    private long _crashes;

    internal VirtualMachine(VmSpec spec, VmPaths paths, VmRuntime runtime, VmStatus? persisted)
    {
        Spec = spec;
        Paths = paths;
        _runtime = runtime;
        _logger = runtime.LoggerFactory.CreateLogger($"Vmk.Vm.{spec.Name}");
        _status = persisted ?? new VmStatus(VmState.Stopped, "defined", DateTimeOffset.UtcNow);
    }

    public string Name => Spec.Name;

    public VmSpec Spec { get; internal set; }

    public VmPaths Paths { get; }

    public VmStatus Status
    {
        get
        {
            lock (_gate)
            {
                return _status;
            }
        }
    }

    public VmState State => Status.State;

    /// <summary>The QEMU pid while one runs.</summary>
    public int? Pid => _process is { HasExited: false } p ? p.Pid : null;

    /// <summary>The serial console of the current run; null before the first start in this VMkernel.</summary>
    public SerialConsole? Console => _console;

    /// <summary>The guest's IPv4 addresses per NIC while it runs (DHCP leases of its port groups, its console reports).</summary>
    public IReadOnlyList<NicAddresses> GuestAddresses => _runtime.Network?.GuestAddresses(this) ?? [];

    /// <summary>The QMP connection of the current run (live migration drives QEMU through it).</summary>
    internal QmpClient? Qmp => _qmp;

    /// <summary>QEMU exits this VMkernel saw that neither a command nor the guest asked for (crash, external kill).</summary>
    public long Crashes => Interlocked.Read(ref _crashes);

    /// <summary>Raised after every state change, outside any lock.</summary>
    public event EventHandler<VmStatus>? StatusChanged;

    /// <summary>Set while the VM takes part in a live migration on this host: "outgoing:ID" or "incoming:ID".</summary>
    public string? Migration => Volatile.Read(ref _migration);

    /// <summary>QEMU's MIGRATION events (their "status"), for the live migration that follows them.</summary>
    internal event EventHandler<string>? MigrationStatusChanged;

    /// <summary>QEMU's timestamp (wall clock) of its last STOP event: when the guest last paused, e.g. for a switch-over.</summary>
    internal DateTimeOffset? LastPausedAt { get; private set; }

    /// <summary>
    /// The argv for this VM on this host, as a person would run it by hand. The VMkernel itself adds -S and
    /// resumes the guest with QMP `cont` once the console is attached.
    /// </summary>
    public IReadOnlyList<string> BuildArgv() =>
        QemuCommandLine.Build(Spec with { Disks = _runtime.Storage.Describe(Name, Spec.Disks) }, Paths, _runtime.Qemu);

    /// <summary>Completes with the first status (the current one included) that satisfies <paramref name="match"/>.</summary>
    public Task<VmStatus> WaitForAsync(Func<VmStatus, bool> match, CancellationToken ct)
    {
        var tcs = new TaskCompletionSource<VmStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (match(_status))
            {
                return Task.FromResult(_status);
            }
            _waiters.Add((match, tcs));
        }
        return tcs.Task.WaitAsync(ct);
    }

    public Task<VmStatus> WaitForStateAsync(VmState state, CancellationToken ct) => WaitForAsync(s => s.State == state, ct);

    public Task StartAsync(CancellationToken ct = default) => StartCoreAsync(incomingMigration: null, ct);

    /// <summary>
    /// Live migration, target side: QEMU started paused with <c>-incoming defer</c>, its disks exported without
    /// their leases (<see cref="StorageStack.AttachIncomingAsync"/>). The guest runs only after
    /// <see cref="FinishIncomingAsync"/>.
    /// </summary>
    internal Task StartIncomingAsync(string migrationId, CancellationToken ct) => StartCoreAsync(migrationId, ct);

    private async Task StartCoreAsync(string? incomingMigration, CancellationToken ct)
    {
        await RunCommandAsync(async () =>
        {
            if (State is not (VmState.Stopped or VmState.Failed))
            {
                throw new VmkernelException($"VM '{Name}' is {State}; only a stopped or failed VM can be started");
            }
            Volatile.Write(ref _migration, incomingMigration is null ? null : $"incoming:{incomingMigration}");
            SetStatus(VmState.Starting, incomingMigration is null ? "starting QEMU" : $"starting QEMU for incoming migration {incomingMigration}", stopRequested: false);
            try
            {
                await LaunchAsync(ct, incomingMigration);
            }
            catch (Exception e)
            {
                var reason = e is VmkernelException ? e.Message : $"start failed: {e.Message}";
                _process?.Kill();
                if (_process is not null)
                {
                    await _process.Exited.WaitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                }
                await ReleaseRunAsync();
                SetStatus(VmState.Failed, reason, stopRequested: false);
                throw e is VmkernelException ? e : new VmkernelException(reason, e);
            }
        }, ct);
    }

    /// <summary>ACPI power-down; if the guest has not powered off within the timeout, a forced stop.</summary>
    public async Task ShutdownAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        await RunCommandAsync(async () =>
        {
            if (!IsPoweredOn())
            {
                return;
            }
            var wasPaused = State == VmState.Paused;
            SetStatus(VmState.Stopping, "guest shutdown requested (ACPI power button)", stopRequested: true);
            if (!wasPaused && await TryQmpAsync("system_powerdown")
                && await WaitExitAsync(timeout ?? _runtime.ShutdownTimeout))
            {
                return;
            }
            _logger.LogWarning("VM {Vm} did not power off within {Timeout}; forcing it off", Name, timeout ?? _runtime.ShutdownTimeout);
            await ForceOffAsync();
        }, ct);
    }

    /// <summary>Hard power-off: QEMU quits at once (SIGKILL if it does not).</summary>
    public async Task StopAsync(CancellationToken ct = default)
    {
        await RunCommandAsync(async () =>
        {
            if (!IsPoweredOn())
            {
                return;
            }
            SetStatus(VmState.Stopping, "power off requested", stopRequested: true);
            await ForceOffAsync();
        }, ct);
    }

    /// <summary>SIGKILL to QEMU, for a VMM that no longer answers.</summary>
    public async Task KillAsync(CancellationToken ct = default)
    {
        await RunCommandAsync(async () =>
        {
            if (_process is not { HasExited: false } p)
            {
                return;
            }
            SetStatus(VmState.Stopping, "kill requested", stopRequested: true);
            p.Kill();
            await WaitExitAsync(TimeSpan.FromSeconds(30));
        }, ct);
    }

    /// <summary>Incoming migration: takes the disk leases the source released (off the command queue, so it can overlap QEMU's last state load).</summary>
    internal Task TakeOverLeasesAsync(TimeSpan leaseWait, TimeSpan? poll = null) => Task.Run(() => _runtime.Storage.TakeOverAsync(Name, leaseWait, poll));

    /// <summary>
    /// Live migration, target side, once the migration stream is complete and the source released the disks:
    /// waits for the leases (<paramref name="leasesTaken"/>; a failure leaves the guest paused and the disks
    /// untouched) and only then resumes.
    /// </summary>
    internal async Task<(TimeSpan Leases, TimeSpan Cont)> FinishIncomingAsync(string migrationId, Task leasesTaken, CancellationToken ct)
    {
        (TimeSpan, TimeSpan) timings = default;
        await RunCommandAsync(async () =>
        {
            if (Migration != $"incoming:{migrationId}" || _qmp is null || State != VmState.Paused)
            {
                throw new VmkernelException($"VM '{Name}' is {State} and not waiting for migration {migrationId} ({Migration ?? "no migration"})");
            }
            // No query-status here: the caller saw the incoming migration "completed" in query-migrate, after which
            // QEMU (started with -S) is paused; one QMP round trip less in the guest's pause.
            var clock = Stopwatch.StartNew();
            await leasesTaken;
            var leases = clock.Elapsed;
            await _qmp.ExecuteAsync("cont", ct: ct);
            timings = (leases, clock.Elapsed - leases);
            Volatile.Write(ref _migration, null);
            SetStatus(VmState.Running, $"migrated in (migration {migrationId})", stopRequested: false);
        }, ct);
        return timings;
    }

    /// <summary>
    /// Live migration, source side: runs <paramref name="migrate"/> against this VM's QEMU with every other command
    /// held back. When it reports completion (a reason), the disks are revoked first (exports removed: no write
    /// from this QEMU reaches them any more; leases released) and QEMU, now in postmigrate, quits.
    /// </summary>
    internal async Task<T> MigrateOutAsync<T>(string migrationId, Func<QmpClient, Task<T>> migrate, Func<T, string?> completed,
        Func<(TimeSpan Revoke, TimeSpan Release), Task> revoked, CancellationToken ct)
    {
        T result = default!;
        await RunCommandAsync(async () =>
        {
            if (State is not (VmState.Running or VmState.Paused) || _qmp is null)
            {
                throw new VmkernelException($"VM '{Name}' is {State}; only a running or paused VM can be migrated");
            }
            Volatile.Write(ref _migration, $"outgoing:{migrationId}");
            StatusChanged?.Invoke(this, Status);
            try
            {
                result = await migrate(_qmp);
            }
            finally
            {
                Volatile.Write(ref _migration, null);
                // The power state is unchanged, so SetStatus would not say so: watchers (the operator) must learn
                // that a cancelled or failed migration is over, or they keep the VM "Migrating".
                StatusChanged?.Invoke(this, Status);
            }
            if (completed(result) is not string reason)
            {
                return;
            }
            var handover = await _runtime.Storage.HandOverAsync(Name);
            // The target may take the leases from here on; this QEMU can no longer reach the disks.
            await revoked(handover);
            _exitReason = reason;
            SetStatus(VmState.Stopping, reason, stopRequested: true);
            // SIGKILL, not `quit`: the guest's state lives on the target now, and a QEMU whose NBD server went away
            // spends its reconnect delay trying to drain its disks before it exits (measured: 10 s).
            _process?.Kill();
            if (!await WaitExitAsync(TimeSpan.FromSeconds(30)))
            {
                throw new VmkernelException($"QEMU pid {_process?.Pid} of migrated VM '{Name}' did not exit after SIGKILL");
            }
        }, ct);
        return result;
    }

    public Task ResetAsync(CancellationToken ct = default) => RequireQmpAsync("system_reset", null, ct);

    public Task PauseAsync(CancellationToken ct = default) => RequireQmpAsync("stop", VmState.Paused, ct);

    public Task ResumeAsync(CancellationToken ct = default) => RequireQmpAsync("cont", VmState.Running, ct);

    /// <summary>Connects to a QEMU that a previous VMkernel started, or settles the state of one that is gone.</summary>
    internal async Task AdoptAsync(CancellationToken ct)
    {
        var last = Status;
        var process = QemuProcess.Adopt(Paths);
        if (process is null || process.HasExited)
        {
            if (last.State is VmState.Stopped or VmState.Failed)
            {
                return;
            }
            if (last.StopRequested || last.State == VmState.Stopping)
            {
                SetStatus(VmState.Stopped, "stopped while no VMkernel was watching", stopRequested: true);
                return;
            }
            var tail = QemuProcess.ReadTail(Paths.StderrLog, 1024);
            Interlocked.Increment(ref _crashes);
            SetStatus(VmState.Failed,
                "QEMU exited while no VMkernel was watching" + (tail.Length > 0 ? $"; its last words: {tail}" : ""),
                stopRequested: false);
            return;
        }
        _process = process;
        // Its cgroup too, so that it is removed when this VM stops (its processes are in it already).
        _cgroup = _runtime.Cgroups?.Open(VmCgroupNames.For(Name, _runtime.HostName));
        try
        {
            // Serve the disks again first: QEMU's NBD client is reconnecting to this host's socket.
            await _runtime.Storage.AttachAsync(Name, Spec.Disks, _runtime.DiskLeaseWait);
        }
        catch (VmkernelException e)
        {
            // Say a lease another host took while this host was down (HA restarted the VM there): the disks stay
            // unserved, so this QEMU can write nothing, and it is not the VM's live copy.
            SetStatus(VmState.Failed,
                $"its disks cannot be served again ({e.Message}); QEMU (pid {process.Pid}) still runs but can no longer reach them: stop it with `vmctl vm kill {Name}`",
                stopRequested: false);
            return;
        }
        try
        {
            _qmp = await QmpClient.ConnectAsync(Paths.QmpSocket, TimeSpan.FromSeconds(5), _logger, ct);
            _console = new SerialConsole(Paths.ConsoleSocket, Paths.ConsoleLog, _logger);
            await _console.ConnectAsync(ct);
        }
        catch (Exception e) when (e is QmpException or IOException or System.Net.Sockets.SocketException or TimeoutException or VmkernelException)
        {
            SetStatus(VmState.Failed,
                $"QEMU (pid {process.Pid}) runs but does not answer on {Paths.QmpSocket} ({e.Message}); kill it with `vmctl vm kill {Name}`",
                stopRequested: false);
            return;
        }
        StartWatching();
        var qemuStatus = await _qmp.QueryStatusAsync();
        SetStatus(qemuStatus == "running" ? VmState.Running : VmState.Paused, $"re-adopted QEMU pid {process.Pid} ({qemuStatus})", stopRequested: false);
        _logger.LogInformation("Re-adopted VM {Vm}: QEMU pid {Pid}, {QemuStatus}", Name, process.Pid, qemuStatus);
    }

    /// <summary>Lets go of QEMU without stopping it: the VM keeps running for the next VMkernel to adopt.</summary>
    public async ValueTask DisposeAsync()
    {
        _detached = true;
        if (_watch is not null)
        {
            await _watch.CancelAsync();
        }
        if (_qmp is not null)
        {
            await _qmp.DisposeAsync();
        }
        if (_console is not null)
        {
            await _console.DisposeAsync();
        }
        _commands.Dispose();
    }

    internal static VmStatus? ReadPersistedStatus(VmPaths paths)
    {
        try
        {
            return JsonSerializer.Deserialize<VmStatus>(File.ReadAllText(paths.StateFile));
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    private bool IsPoweredOn() => State is VmState.Running or VmState.Paused or VmState.Starting or VmState.Stopping
        && _process is { HasExited: false };

    private async Task LaunchAsync(CancellationToken ct, string? incomingMigration = null)
    {
        foreach (var stale in new[] { Paths.QmpSocket, Paths.ConsoleSocket, Paths.PidFile })
        {
            File.Delete(stale);
        }
        if (File.Exists(Paths.ConsoleLog))
        {
            File.Move(Paths.ConsoleLog, Paths.ConsoleLog + ".previous", overwrite: true);
        }
        _exitExpected = false;
        _guestPoweredOff = false;
        _exitReason = null;
        var clock = Stopwatch.StartNew();
        IReadOnlyList<string> procs = [];
        if (_runtime.Cgroups is { } cgroups)
        {
            _cgroup = cgroups.Create(VmCgroupNames.For(Name, _runtime.HostName), Spec.Resources ?? VmResources.Default(Spec.Cpu.VCpus));
            procs = _cgroup.ProcsFiles;
        }
        // Always start paused and let the guest run only once the console pump is attached: QEMU drops
        // console output that no client reads, and the first lines of a boot are the ones people need.
        var disks = incomingMigration is null
            ? await _runtime.Storage.AttachAsync(Name, Spec.Disks, _runtime.DiskLeaseWait)
            : await _runtime.Storage.AttachIncomingAsync(Name, Spec.Disks);
        var disksAt = clock.Elapsed;
        if (_runtime.Network is { } network)
        {
            await network.AttachAsync(Spec, ct); // QEMU opens the taps by name
        }
        var networkAt = clock.Elapsed;
        TimeSpan qmpAt = default, consoleAt = default;
        var argv = QemuCommandLine.Build(Spec with { StartPaused = true, Disks = disks }, Paths, _runtime.Qemu);
        if (incomingMigration is not null)
        {
            // Paused; the listening address comes later (QMP).
            argv = [.. argv, .. QemuCommandLine.IncomingMigrationArgs()];
        }
        _logger.LogInformation("Starting VM {Vm}: {Command}", Name, QemuCommandLine.ToShellLine(_runtime.QemuBinary, argv));
        var process = QemuProcess.Launch(_runtime.QemuBinary, argv, Paths, procs);
        _process = process;

        try
        {
            _qmp = await ConnectQmpAsync(process, ct);
            qmpAt = clock.Elapsed;
            _console = new SerialConsole(Paths.ConsoleSocket, Paths.ConsoleLog, _logger);
            await _console.ConnectAsync(ct);
            consoleAt = clock.Elapsed;
            StartWatching();
            if (!Spec.StartPaused && incomingMigration is null)
            {
                await _qmp.ExecuteAsync("cont", ct: ct);
            }
        }
        catch (Exception e) when (e is QmpException or IOException or System.Net.Sockets.SocketException)
        {
            // QEMU may open its sockets and only then refuse the configuration (a bad kernel image, say): its
            // own words on stderr say why, not the broken connection.
            await process.Exited.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (process.HasExited)
            {
                throw new VmkernelException($"QEMU exited while starting VM '{Name}': {DescribeStderr(process)}", e);
            }
            throw;
        }
        var qemuStatus = await _qmp.QueryStatusAsync();
        // Where a start's time goes; at Information for an incoming migration, whose preparation is measured.
        _logger.Log(incomingMigration is null ? LogLevel.Debug : LogLevel.Information,
            "VM {Vm} started in {Total} ms: cgroup and disks {Disks} ms, network {Network} ms, QEMU exec to QMP connected {Qmp} ms, console {Console} ms",
            Name, (long)clock.Elapsed.TotalMilliseconds, (long)disksAt.TotalMilliseconds, (long)(networkAt - disksAt).TotalMilliseconds,
            (long)(qmpAt - networkAt).TotalMilliseconds, (long)(consoleAt - qmpAt).TotalMilliseconds);
        SetStatus(qemuStatus == "running" ? VmState.Running : VmState.Paused,
            incomingMigration is null ? $"QEMU pid {process.Pid} started ({qemuStatus})" : $"QEMU pid {process.Pid} waits for incoming migration {incomingMigration}",
            stopRequested: false);
    }

    private async Task<QmpClient> ConnectQmpAsync(QemuProcess process, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var connect = QmpClient.ConnectAsync(Paths.QmpSocket, _runtime.StartTimeout, _logger, deadline.Token);
        if (await Task.WhenAny(connect, process.Exited) != connect)
        {
            await deadline.CancelAsync();
            await ((Task)connect).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw new VmkernelException($"QEMU exited while starting VM '{Name}': {DescribeStderr(process)}");
        }
        return await connect;
    }

    private static string DescribeStderr(QemuProcess process)
    {
        var tail = process.StderrTail();
        return tail.Length > 0 ? tail : "it printed nothing on stderr";
    }

    private void StartWatching()
    {
        _watch = new CancellationTokenSource();
        var qmp = _qmp!;
        var process = _process!;
        var token = _watch.Token;
        _ = Task.Run(() => FollowEventsAsync(qmp, token), CancellationToken.None);
        _ = Task.Run(() => FollowExitAsync(process, token), CancellationToken.None);
    }

    private async Task FollowEventsAsync(QmpClient qmp, CancellationToken ct)
    {
        try
        {
            await foreach (var ev in qmp.Events.ReadAllAsync(ct))
            {
                _logger.LogDebug("VM {Vm} QMP event {Event} {Data}", Name, ev.Name, ev.Data);
                switch (ev.Name)
                {
                    case "SHUTDOWN":
                        _exitExpected = true;
                        _guestPoweredOff = ev.Data.ValueKind == JsonValueKind.Object
                            && ev.Data.TryGetProperty("guest", out var g) && g.ValueKind == JsonValueKind.True;
                        break;
                    case "STOP" when !_exitExpected && State == VmState.Running:
                        LastPausedAt = ev.Timestamp;
                        SetStatus(VmState.Paused, "paused", stopRequested: false);
                        break;
                    case "RESUME" when State == VmState.Paused:
                        SetStatus(VmState.Running, "resumed", stopRequested: false);
                        break;
                    case "MIGRATION" when ev.Data.ValueKind == JsonValueKind.Object && ev.Data.TryGetProperty("status", out var ms):
                        MigrationStatusChanged?.Invoke(this, ms.GetString() ?? "");
                        break;
                    case "RESET":
                        _logger.LogInformation("VM {Vm} was reset", Name);
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task FollowExitAsync(QemuProcess process, CancellationToken ct)
    {
        try
        {
            await process.Exited.WaitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        if (_detached)
        {
            return;
        }
        await ReleaseRunAsync();
        var current = Status;
        if (current.StopRequested || _exitExpected)
        {
            SetStatus(VmState.Stopped, _exitReason ?? (_guestPoweredOff ? "guest powered off" : "stopped"), stopRequested: true);
        }
        else
        {
            Volatile.Write(ref _migration, null);
            Interlocked.Increment(ref _crashes);
            SetStatus(VmState.Failed, $"QEMU exited unexpectedly: {DescribeStderr(process)}", stopRequested: false);
        }
        _logger.LogInformation("VM {Vm} QEMU pid {Pid} exited: {State} ({Reason})", Name, process.Pid, State, Status.Reason);
    }

    private async Task ReleaseRunAsync()
    {
        if (_qmp is not null)
        {
            await _qmp.DisposeAsync();
        }
        _cgroup?.Delete();
        _cgroup = null;
        await _runtime.Storage.DetachAsync(Name);
        if (_runtime.Network is { } network)
        {
            await network.DetachAsync(Name);
        }
    }

    private async Task<bool> WaitExitAsync(TimeSpan timeout)
    {
        if (_process is null)
        {
            return true;
        }
        try
        {
            // Wait for the state, not only the process: the exit watcher has settled Stopped/Failed by then.
            await WaitForAsync(s => s.State is VmState.Stopped or VmState.Failed, CancellationToken.None).WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task ForceOffAsync()
    {
        if (await TryQmpAsync("quit") && await WaitExitAsync(TimeSpan.FromSeconds(10)))
        {
            return;
        }
        _process?.Kill();
        if (!await WaitExitAsync(TimeSpan.FromSeconds(30)))
        {
            throw new VmkernelException($"QEMU pid {_process?.Pid} of VM '{Name}' did not exit after SIGKILL");
        }
    }

    private async Task<bool> TryQmpAsync(string command)
    {
        if (_qmp is null)
        {
            return false;
        }
        try
        {
            await _qmp.ExecuteAsync(command, timeout: TimeSpan.FromSeconds(10));
            return true;
        }
        catch (QmpException e)
        {
            _logger.LogWarning("VM {Vm}: QMP {Command} failed: {Error}", Name, command, e.Message);
            return false;
        }
    }

    private Task RequireQmpAsync(string command, VmState? then, CancellationToken ct) => RunCommandAsync(async () =>
    {
        if (State is not (VmState.Running or VmState.Paused) || _qmp is null)
        {
            throw new VmkernelException($"VM '{Name}' is {State}; '{command}' needs a running or paused VM");
        }
        await _qmp.ExecuteAsync(command, ct: ct);
        if (then is VmState next)
        {
            SetStatus(next, next == VmState.Paused ? "paused" : "resumed", stopRequested: false);
        }
    }, ct);

    private async Task RunCommandAsync(Func<Task> command, CancellationToken ct)
    {
        await _commands.WaitAsync(ct);
        try
        {
            await command();
        }
        finally
        {
            _commands.Release();
        }
    }

    private void SetStatus(VmState state, string reason, bool stopRequested)
    {
        VmStatus status;
        List<TaskCompletionSource<VmStatus>> done = [];
        lock (_gate)
        {
            if (_status.State == state && _status.Reason == reason && _status.StopRequested == stopRequested)
            {
                return;
            }
            status = _status = new VmStatus(state, reason, DateTimeOffset.UtcNow, stopRequested);
            // Under the lock: commands, QMP events and the exit watcher all set states, and state.json must
            // end with the last one, written by one writer at a time.
            Persist(status);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Match(status))
                {
                    done.Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
            }
        }
        _logger.LogInformation("VM {Vm} is {State}: {Reason}", Name, state, reason);
        foreach (var d in done)
        {
            d.TrySetResult(status);
        }
        StatusChanged?.Invoke(this, status);
    }

    private void Persist(VmStatus status)
    {
        try
        {
            var tmp = Paths.StateFile + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(status, StateJson));
            File.Move(tmp, Paths.StateFile, overwrite: true);
        }
        catch (IOException e)
        {
            // The state machine goes on; a VMkernel restarted now would judge this VM by the state before.
            _logger.LogError("VM {Vm}: cannot record state {State} in {File}: {Error}", Name, status.State, Paths.StateFile, e.Message);
        }
    }
}
