using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Qemu.Qmp;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Migration;

/// <summary>
/// Live migration (vMotion) on one host, both roles, following DESIGN.md section 4:
/// <list type="number">
/// <item>target <see cref="PrepareIncomingAsync"/>: the VM's QEMU starts paused with <c>-incoming defer</c>, its
/// disks exported without their leases (requests refused), and listens on this host's migration address;</item>
/// <item>source <see cref="MigrateOutAsync"/>: QMP <c>migrate</c> with the policy, progress from query-migrate;
/// at completion QEMU is in postmigrate, its disk exports are removed (nothing it sends reaches a disk any more),
/// the leases released and QEMU quits; the VM's definition leaves this host;</item>
/// <item>target, on its own once its QEMU has the whole state: takes the leases the moment the source released them
/// (must succeed) and only then resumes the guest; <see cref="FinishIncomingAsync"/> waits for that and reports it.</item>
/// </list>
/// The target does not wait for the caller to relay the source's completion: its QEMU's completion means the source
/// stopped the guest and sent all of it, and the leases (released by the source only after its exports are gone) are
/// the only permission to resume. That keeps the caller's round trips out of the guest's pause.
/// Any failure before the source's completion leaves the guest running on the source; <see cref="CancelAsync"/>
/// stops a migration on either side (migrate_cancel on the source, the target's QEMU killed and its VM removed).
/// </summary>
public sealed class LiveMigrations
{
    private const string TlsObjectId = "vmk-migration-tls";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How often the target asks its QEMU while it waits for the state: only a safety net, the MIGRATION event wakes
    /// the wait at once, and the target's QEMU spends the transfer loading what arrives.
    /// </summary>
    private static readonly TimeSpan IncomingPollInterval = TimeSpan.FromSeconds(1);

    /// <summary>How often the target reads a lease the source is about to release (a read, nothing written).</summary>
    private static readonly TimeSpan HandoverLeasePoll = TimeSpan.FromMilliseconds(2);

    private readonly VmkernelHost _host;
    private readonly string? _tlsDirectory;
    private readonly TimeSpan _leaseWait;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Incoming> _incoming = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Outgoing> _outgoing = new(StringComparer.Ordinal);

    internal LiveMigrations(VmkernelHost host, IPAddress address, string? tlsDirectory, TimeSpan leaseWait, ILogger logger)
    {
        _host = host;
        Address = address;
        _tlsDirectory = tlsDirectory;
        _leaseWait = leaseWait;
        _logger = logger;
    }

    /// <summary>Where this host's incoming migrations listen (the migration network).</summary>
    public IPAddress Address { get; }

    /// <summary>Whether this host can encrypt migration streams (it was given TLS credentials).</summary>
    public bool TlsAvailable => _tlsDirectory is not null;

    /// <summary>Migration ids in progress on this host, with their role ("incoming" or "outgoing") and VM.</summary>
    public IReadOnlyDictionary<string, (string Role, string Vm)> InProgress =>
        _incoming.Select(kv => (kv.Key, (Role: "incoming", Vm: kv.Value.Vm)))
            .Concat(_outgoing.Select(kv => (kv.Key, (Role: "outgoing", Vm: kv.Value.Vm))))
            .ToDictionary(x => x.Key, x => x.Item2);

    /// <summary>
    /// Target side: defines the VM here and starts its QEMU waiting for the migration stream. <paramref name="admit"/>
    /// wraps the start with the caller's admission control (the daemon's reservations); its exceptions pass through
    /// unchanged after the VM was removed again.
    /// </summary>
    public async Task<IncomingMigration> PrepareIncomingAsync(string migrationId, VmSpec spec, MigrationPolicy policy, CancellationToken ct = default,
        Func<VirtualMachine, Func<Task>, Task>? admit = null)
    {
        ValidateId(migrationId);
        RequireTls(policy);
        if (_host.Find(spec.Name) is { } existing && existing.State is not (VmState.Stopped or VmState.Failed))
        {
            throw new MigrationException($"migration {migrationId}: this host already runs a VM named '{spec.Name}' ({existing.State}); a VM can be on one host only", MigrationErrorKind.Precondition);
        }
        var incoming = new Incoming(spec.Name);
        if (!_incoming.TryAdd(migrationId, incoming))
        {
            throw new MigrationException($"migration {migrationId} is already being prepared on this host", MigrationErrorKind.Precondition);
        }
        try
        {
            var clock = Stopwatch.StartNew();
            var vm = await _host.DefineAsync(spec, ct);
            // Outlives this process: a VMkernel opened after a crash knows the VM only came to be migrated in.
            await File.WriteAllTextAsync(IncomingMarker(vm), migrationId, ct);
            var defined = clock.Elapsed;
            Func<Task> start = () => vm.StartIncomingAsync(migrationId, ct);
            await (admit is null ? start() : admit(vm, start));
            var started = clock.Elapsed;
            var qmp = vm.Qmp ?? throw new MigrationException($"VM '{spec.Name}' has no QMP connection after its start");
            // late-block-activate: the target's block layer stays inactive until `cont`, i.e. until the leases are ours.
            await SetUpAsync(qmp, [("events", true), ("late-block-activate", true)], policy.Tls ? "server" : null, [], ct);
            var setUp = clock.Elapsed;
            var uri = await ListenAsync(qmp, ct);
            incoming.Resume = Task.Run(() => ResumeWhenCompleteAsync(migrationId, vm, incoming), CancellationToken.None);
            _ = incoming.Resume.ContinueWith(t => _logger.LogWarning("Migration {Migration}: VM {Vm} not resumed on this host: {Error}", migrationId, spec.Name, t.Exception!.InnerException!.Message),
                CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            _logger.LogInformation(
                "Migration {Migration}: VM {Vm} waits for its state on {Uri} (TLS {Tls}); prepared in {Total} ms: define {Define} ms, QEMU start {Start} ms, set-up (capabilities, TLS object, parameters) {SetUp} ms, migrate-incoming {Listen} ms",
                migrationId, spec.Name, uri, policy.Tls ? "on" : "off", Ms(clock.Elapsed), Ms(defined), Ms(started - defined), Ms(setUp - started), Ms(clock.Elapsed - setUp));
            return new IncomingMigration(migrationId, spec.Name, uri);
        }
        catch (Exception e)
        {
            _logger.LogWarning("Migration {Migration}: preparing VM {Vm} failed: {Error}", migrationId, spec.Name, e.Message);
            await DiscardIncomingAsync(migrationId);
            if (e is OperationCanceledException or MigrationException || e is not (VmkernelException or QmpException or IOException))
            {
                throw;
            }
            throw new MigrationException($"migration {migrationId}: the target cannot receive VM '{spec.Name}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Source side: migrates the VM to a target prepared with <see cref="PrepareIncomingAsync"/>. Returns once QEMU
    /// completed, the disks were revoked on this host, their leases released and the source QEMU has exited. Throws
    /// <see cref="MigrationException"/> (the guest still runs here) when the migration fails or is cancelled.
    /// </summary>
    public async Task<MigrationResult> MigrateOutAsync(string migrationId, string vmName, string targetUri, MigrationPolicy policy,
        IProgress<MigrationProgress>? progress = null, CancellationToken ct = default)
    {
        ValidateId(migrationId);
        RequireTls(policy);
        if (!targetUri.StartsWith("tcp:", StringComparison.Ordinal))
        {
            throw new MigrationException($"migration {migrationId}: target '{targetUri}' is not a tcp:HOST:PORT address (PrepareIncoming on the target returns one)", MigrationErrorKind.InvalidArgument);
        }
        var vm = _host.Get(vmName);
        var started = DateTimeOffset.UtcNow;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var outgoing = new Outgoing(vmName, cancel);
        if (!_outgoing.TryAdd(migrationId, outgoing))
        {
            throw new MigrationException($"migration {migrationId} is already running on this host", MigrationErrorKind.Precondition);
        }
        using var timeout = new CancellationTokenSource();
        using var onTimeout = timeout.Token.Register(() =>
        {
            outgoing.Reason ??= $"it took longer than the policy's {policy.Timeout.TotalSeconds:0} s";
            cancel.Cancel();
        });
        if (policy.Timeout > TimeSpan.Zero)
        {
            timeout.CancelAfter(policy.Timeout);
        }
        // QEMU's MIGRATION event is the moment the source completed (it is in postmigrate from then on): the handover
        // time, part of the guest's pause, is counted from it, not from the query that follows.
        void OnStatus(object? _, string status)
        {
            if (status == "completed")
            {
                Interlocked.CompareExchange(ref outgoing.CompletedEventAt, Stopwatch.GetTimestamp(), 0);
            }
        }
        vm.MigrationStatusChanged += OnStatus;
        try
        {
            long detectedAt = 0;
            (TimeSpan Revoke, TimeSpan Release) steps = default;
            MigrationProgress? handedOver = null;
            Task<MigrationProgress>? figures = null;
            var final = await vm.MigrateOutAsync(migrationId,
                qmp => RunOutgoingAsync(vm, qmp, migrationId, targetUri, policy, progress, outgoing),
                p =>
                {
                    detectedAt = Stopwatch.GetTimestamp();
                    handedOver = p;
                    if (p.Phase != "completed")
                    {
                        return null;
                    }
                    // Completion seen on the event: QEMU's final figures (downtime, total time) come from a query that
                    // runs while the disks are revoked and released, not before.
                    figures = p.HasSourceFigures ? Task.FromResult(p) : FinalFiguresAsync(vm, p);
                    return $"migrated to {targetUri} (migration {migrationId})";
                },
                async timings =>
                {
                    // Reported before this QEMU is killed: the caller's FinishIncoming on the target need not wait for it.
                    steps = timings;
                    var full = figures is null ? handedOver! : await figures;
                    var completedAt = Volatile.Read(ref outgoing.CompletedEventAt) is > 0 and var at && at <= detectedAt ? at : detectedAt;
                    handedOver = full with { HandoverTime = Stopwatch.GetElapsedTime(completedAt), PausedAt = vm.LastPausedAt is { } paused && paused >= started ? paused : null };
                    progress?.Report(handedOver);
                },
                CancellationToken.None);
            final = handedOver ?? final;
            var handover = final.HandoverTime ?? TimeSpan.Zero;
            var eventAt = Volatile.Read(ref outgoing.CompletedEventAt);
            _logger.LogInformation(
                "Migration {Migration}: VM {Vm} moved to {Uri} in {Total} ms (QEMU total-time), downtime {Downtime} ms (QEMU), {Bytes} bytes; " +
                "call to migrate sent {Setup} ms (capabilities, TLS, parameters), completion event to detected {Detect} ms, handover {Handover} ms after the event (revoke exports {Revoke} ms, release leases {Release} ms)",
                migrationId, vmName, targetUri, (long)final.TotalTime.TotalMilliseconds, final.Downtime?.TotalMilliseconds, final.TransferredBytes,
                Ms(outgoing.Setup), eventAt > 0 && eventAt <= detectedAt ? Ms(Stopwatch.GetElapsedTime(eventAt, detectedAt)) : -1,
                Ms(handover), Ms(steps.Revoke), Ms(steps.Release));
            // The VM lives on the target now: its definition leaves this host, as with vMotion.
            await _host.DeleteAsync(vmName, CancellationToken.None);
            return new MigrationResult(final, handover);
        }
        finally
        {
            vm.MigrationStatusChanged -= OnStatus;
            _outgoing.TryRemove(migrationId, out _);
        }
    }

    /// <summary>
    /// Target side, after the source's <see cref="MigrateOutAsync"/> returned: waits (up to 30 s) until this host
    /// resumed the guest under its disk leases, which it does on its own as soon as its QEMU has the whole state and
    /// the source released the leases, and ends the migration here.
    /// </summary>
    public async Task<VirtualMachine> FinishIncomingAsync(string migrationId, CancellationToken ct = default)
    {
        if (!_incoming.TryGetValue(migrationId, out var incoming) || incoming.Resume is not { } resume)
        {
            throw new MigrationException($"migration {migrationId} is not incoming on this host (prepare it first, or it was cancelled)", MigrationErrorKind.NotFound);
        }
        VirtualMachine vm;
        try
        {
            vm = await resume.WaitAsync(TimeSpan.FromSeconds(30), ct);
        }
        catch (TimeoutException)
        {
            throw new MigrationException($"migration {migrationId}: the target has not received the complete state of VM '{incoming.Vm}' within 30 s; the guest stays paused");
        }
        _incoming.TryRemove(migrationId, out _);
        return vm;
    }

    /// <summary>
    /// Target side, from the preparation on: waits for this host's QEMU to have loaded the whole state (only after the
    /// source stopped the guest can it have), takes the disk leases as soon as the source released them and resumes
    /// the guest. Ends without resuming when the migration is discarded here or QEMU reports it failed.
    /// </summary>
    private async Task<VirtualMachine> ResumeWhenCompleteAsync(string migrationId, VirtualMachine vm, Incoming incoming)
    {
        var status = await WaitForTerminalAsync(vm, incoming.Discarded.Token, () => new MigrationException(
            $"migration {migrationId} of VM '{vm.Name}' was cancelled on this host before its state arrived"));
        if (status.Phase != "completed")
        {
            throw new MigrationException($"migration {migrationId}: the target's QEMU reports the migration {status.Phase}{(status.Error is null ? "" : $": {status.Error}")}");
        }
        var clock = Stopwatch.StartNew();
        await incoming.Gate.WaitAsync();
        try
        {
            if (incoming.Discarded.IsCancellationRequested)
            {
                throw new MigrationException($"migration {migrationId} of VM '{vm.Name}' was cancelled on this host; the guest was not resumed here");
            }
            // Nothing reaches the disks before cont (late-block-activate), and the exports refuse requests until the
            // leases are ours; the source releases them right after its own completion, so they are read every few ms.
            var leases = vm.TakeOverLeasesAsync(_leaseWait, HandoverLeasePoll);
            var (leaseWait, cont) = await vm.FinishIncomingAsync(migrationId, leases, CancellationToken.None);
            incoming.Resumed = true;
            File.Delete(IncomingMarker(vm));
            _logger.LogInformation(
                "Migration {Migration}: VM {Vm} runs on this host under its disk leases {Total} ms after its state was loaded: command queue {Queue} ms, waiting for the source to release the leases and taking them {Leases} ms, cont {Cont} ms",
                migrationId, vm.Name, Ms(clock.Elapsed), Ms(clock.Elapsed - leaseWait - cont), Ms(leaseWait), Ms(cont));
            return vm;
        }
        finally
        {
            incoming.Gate.Release();
        }
    }

    /// <summary>
    /// Cancels a migration on this host, whichever role it has here: the source keeps running, the target's QEMU
    /// is killed and its VM removed. False when this host knows no such migration.
    /// </summary>
    public async Task<bool> CancelAsync(string migrationId, string reason = "cancelled")
    {
        if (_outgoing.TryGetValue(migrationId, out var outgoing))
        {
            outgoing.Reason = reason;
            await outgoing.Cancel.CancelAsync();
            return true;
        }
        if (_incoming.ContainsKey(migrationId))
        {
            return await DiscardIncomingAsync(migrationId);
        }
        return false;
    }

    private async Task<MigrationProgress> RunOutgoingAsync(VirtualMachine vm, QmpClient qmp, string migrationId, string targetUri,
        MigrationPolicy policy, IProgress<MigrationProgress>? progress, Outgoing outgoing)
    {
        var ct = outgoing.Cancel.Token;
        ct.ThrowIfCancellationRequested();
        var clock = Stopwatch.StartNew();
        // Both always set: QEMU keeps parameters from one migration to the next, so a cancelled slow try would
        // otherwise throttle the next migration of this QEMU to its bandwidth.
        await SetUpAsync(qmp, [("events", true), ("auto-converge", policy.AutoConverge)], policy.Tls ? "client" : null,
        [
            ("max-bandwidth", policy.BandwidthBytesPerSecond > 0 ? policy.BandwidthBytesPerSecond : MigrationPolicy.QemuDefaultBandwidth),
            ("downtime-limit", policy.DowntimeLimit > TimeSpan.Zero ? (long)policy.DowntimeLimit.TotalMilliseconds : (long)MigrationPolicy.QemuDefaultDowntimeLimit.TotalMilliseconds),
        ], ct);
        _logger.LogInformation("Migration {Migration}: VM {Vm} to {Uri} (TLS {Tls}, bandwidth {Bandwidth}, downtime limit {Downtime} ms, auto-converge {AutoConverge})",
            migrationId, vm.Name, targetUri, policy.Tls ? "on" : "off", policy.BandwidthBytesPerSecond, policy.DowntimeLimit.TotalMilliseconds, policy.AutoConverge);
        await qmp.ExecuteAsync("migrate", new { uri = targetUri }, ct: ct);
        outgoing.Setup = clock.Elapsed;

        var lastTransferred = -1L;
        var lastGrowth = Stopwatch.GetTimestamp();
        var sample = await WaitForTerminalAsync(vm, ct, outgoing: true, onTick: p =>
        {
            progress?.Report(p);
            if (p.TransferredBytes != lastTransferred)
            {
                lastTransferred = p.TransferredBytes;
                lastGrowth = Stopwatch.GetTimestamp();
            }
            else if (policy.NoProgressTimeout > TimeSpan.Zero && Stopwatch.GetElapsedTime(lastGrowth) > policy.NoProgressTimeout)
            {
                outgoing.Reason ??= $"no progress for {policy.NoProgressTimeout.TotalSeconds:0} s (target unreachable or hung)";
                outgoing.Cancel.Cancel();
            }
        }, onCancel: async () =>
        {
            // QEMU goes on with the source as it was (running); the wait continues until it reports "cancelled".
            _logger.LogWarning("Migration {Migration}: cancelling ({Reason})", migrationId, outgoing.Reason ?? "cancelled");
            await qmp.ExecuteAsync("migrate_cancel");
        });
        return sample.Phase switch
        {
            "completed" => sample,
            "cancelled" => throw new MigrationException(
                $"migration {migrationId} of VM '{vm.Name}' to {targetUri} was cancelled ({outgoing.Reason ?? "cancelled"}); the VM goes on running on {_host.Options.HostName}"),
            _ => throw new MigrationException(
                $"migration {migrationId} of VM '{vm.Name}' to {targetUri} failed: {sample.Error ?? "QEMU gave no reason"}; the VM goes on running on {_host.Options.HostName}"),
        };
    }

    /// <summary>
    /// Samples query-migrate until the migration is completed, failed or cancelled; a MIGRATION event wakes it at
    /// once, the interval only paces the progress reports. When <paramref name="ct"/> is cancelled,
    /// <paramref name="onCancel"/> runs once and the wait goes on (for QEMU to confirm), or without it
    /// <paramref name="onTimeout"/>'s exception is thrown.
    /// </summary>
    private static async Task<MigrationProgress> WaitForTerminalAsync(VirtualMachine vm, CancellationToken ct, Func<MigrationException>? onTimeout = null,
        Action<MigrationProgress>? onTick = null, Func<Task>? onCancel = null, bool outgoing = false)
    {
        var cancelled = false;
        var changed = new SemaphoreSlim(0);
        var seen = new EventsSeen();
        MigrationProgress? last = null;
        void OnStatus(object? _, string status)
        {
            // A QEMU that arrived here by migration said "completed" for that incoming one long ago; only a
            // "completed" after this migration's own setup/active events is this migration's completion. An incoming
            // QEMU was started for this migration: its "completed" is this one's.
            if (status is "setup" or "active" or "pre-switchover" or "device")
            {
                seen.Own = true;
            }
            else if (status == "completed" && (seen.Own || !outgoing))
            {
                seen.Completed = true;
            }
            changed.Release();
        }
        vm.MigrationStatusChanged += OnStatus;
        try
        {
            while (true)
            {
                if (seen.Completed)
                {
                    // The source's completion as QEMU announced it (postmigrate: paused, disks flushed and inactive):
                    // the handover starts now, the final figures are queried alongside (see MigrateOutAsync). The
                    // target's: the whole state is loaded (QEMU paused, -S), no query needed before the leases.
                    return new MigrationProgress("completed", last?.TransferredBytes ?? 0, 0, last?.DirtyPagesRate ?? 0, last?.Iteration ?? 0,
                        last?.TotalTime ?? TimeSpan.Zero, null, null);
                }
                var qmp = vm.Qmp ?? throw new MigrationException($"VM '{vm.Name}' lost its QEMU during the migration");
                MigrationProgress sample;
                try
                {
                    sample = MigrationProgress.FromQueryMigrate(await qmp.ExecuteAsync("query-migrate"));
                }
                catch (QmpException e)
                {
                    throw new MigrationException($"VM '{vm.Name}': its QEMU stopped answering during the migration ({e.Message})", e);
                }
                // Only "completed" can be stale (see HasSourceFigures); the source's failed/cancelled carry no times.
                if (sample.IsTerminal && !(outgoing && sample.Phase == "completed" && !sample.HasSourceFigures))
                {
                    return sample;
                }
                if (!sample.IsTerminal)
                {
                    // A stale "completed" is not reported: a caller would take it for this migration's end.
                    last = sample;
                    onTick?.Invoke(sample);
                }
                if (ct.IsCancellationRequested && !cancelled)
                {
                    if (onCancel is null)
                    {
                        throw onTimeout?.Invoke() ?? (Exception)new OperationCanceledException(ct);
                    }
                    cancelled = true;
                    await onCancel();
                }
                try
                {
                    await changed.WaitAsync(outgoing ? PollInterval : IncomingPollInterval, cancelled ? CancellationToken.None : ct);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }
        finally
        {
            // Not disposed: an event raised concurrently with the unsubscription may still release it.
            vm.MigrationStatusChanged -= OnStatus;
        }
    }

    /// <summary>
    /// The source's query-migrate after completion (downtime, total time). QEMU computes them just after it announced
    /// the completion and tells nobody when: asked again every few ms for up to a second (this runs beside the
    /// handover, not before it); the event's sample if QEMU never gives them.
    /// </summary>
    private static async Task<MigrationProgress> FinalFiguresAsync(VirtualMachine vm, MigrationProgress fromEvent)
    {
        var until = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        try
        {
            while (true)
            {
                var sample = MigrationProgress.FromQueryMigrate(await (vm.Qmp ?? throw new QmpException("no QMP connection")).ExecuteAsync("query-migrate"));
                if (sample is { Phase: "completed", HasSourceFigures: true })
                {
                    return sample;
                }
                if (Stopwatch.GetTimestamp() > until)
                {
                    return fromEvent;
                }
                await Task.Delay(2);
            }
        }
        catch (QmpException)
        {
            return fromEvent;
        }
    }

    /// <summary>
    /// After a VMkernel restart: a VM that was being migrated in when the previous one stopped cannot be finished
    /// (the migration's state died with that process). One that adoption left Stopped or Failed - its QEMU gone
    /// (the source hung up, the operator cancelled), or still waiting while the source holds the leases - is a
    /// stale copy of a guest running elsewhere: removed (a QEMU still there is killed, so the source's migration
    /// fails and the guest runs on there). One adopted Paused under its leases may hold the only copy of a guest
    /// whose source already completed: kept, and said so.
    /// </summary>
    internal async Task DiscardAbandonedIncomingAsync()
    {
        foreach (var vm in _host.VirtualMachines)
        {
            if (!File.Exists(IncomingMarker(vm)))
            {
                continue;
            }
            var migrationId = File.ReadAllText(IncomingMarker(vm)).Trim();
            if (vm.State is not (VmState.Stopped or VmState.Failed))
            {
                _logger.LogWarning("Migration {Migration}: VM {Vm} was arriving when the previous VMkernel stopped and is {State} under its leases; kept: resume it to finish the move by hand",
                    migrationId, vm.Name, vm.State);
                continue;
            }
            try
            {
                await _host.DeleteAsync(vm.Name, CancellationToken.None);
                _logger.LogInformation("Migration {Migration}: VM {Vm} was arriving when the previous VMkernel stopped and cannot be finished; removed", migrationId, vm.Name);
            }
            catch (Exception e) when (e is VmkernelException or IOException)
            {
                _logger.LogError("Migration {Migration}: the abandoned incoming VM {Vm} could not be removed: {Error}", migrationId, vm.Name, e.Message);
            }
        }
    }

    private static string IncomingMarker(VirtualMachine vm) => Path.Combine(vm.Paths.Directory, "incoming-migration");

    /// <summary>
    /// Stops an incoming migration here: its QEMU killed and the VM removed. False (and nothing touched) when the
    /// guest already runs here: the source completed and released the leases, so this host has the only copy.
    /// </summary>
    private async Task<bool> DiscardIncomingAsync(string migrationId)
    {
        if (!_incoming.TryGetValue(migrationId, out var incoming))
        {
            return false;
        }
        await incoming.Gate.WaitAsync();
        try
        {
            if (incoming.Resumed)
            {
                _incoming.TryRemove(migrationId, out _);
                _logger.LogWarning("Migration {Migration}: not cancelled here, VM {Vm} already runs on this host (the source completed and let it go)", migrationId, incoming.Vm);
                return false;
            }
            await incoming.Discarded.CancelAsync();
        }
        finally
        {
            incoming.Gate.Release();
        }
        if (!_incoming.TryRemove(migrationId, out _) || _host.Find(incoming.Vm) is not { } vm)
        {
            return true;
        }
        var name = incoming.Vm;
        try
        {
            await vm.KillAsync(CancellationToken.None);
            // A QEMU that already exited (a failed incoming stream ends it) is settled by the VM's exit watcher,
            // which may not have run yet: a VM can only be deleted once it is Stopped or Failed.
            await vm.WaitForAsync(s => s.State is VmState.Stopped or VmState.Failed, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            await _host.DeleteAsync(name, CancellationToken.None);
            _logger.LogInformation("Migration {Migration}: target VM {Vm} removed from this host", migrationId, name);
        }
        catch (Exception e) when (e is VmkernelException or TimeoutException or IOException)
        {
            _logger.LogError("Migration {Migration}: the target VM {Vm} could not be removed: {Error}", migrationId, name, e.Message);
        }
        return true;
    }

    /// <summary>
    /// A migration's set-up on one QEMU: capabilities, the TLS credentials object (<paramref name="tlsEndpoint"/>
    /// "client" or "server"; null for none) and the parameters, sent one after another without waiting for each
    /// reply. QEMU runs QMP commands in the order they arrive, so the order holds, and the set-up costs one round
    /// trip instead of five on a busy host. Every reply is awaited before anything may follow (the caller's
    /// migrate): a failed step fails the set-up, in the order the steps were sent.
    /// </summary>
    private async Task SetUpAsync(QmpClient qmp, (string Name, bool On)[] capabilities, string? tlsEndpoint,
        (string Name, long Value)[] parameters, CancellationToken ct)
    {
        var steps = new List<Task>
        {
            qmp.ExecuteAsync("migrate-set-capabilities",
                new { capabilities = capabilities.Select(c => new Dictionary<string, object> { ["capability"] = c.Name, ["state"] = c.On }).ToArray() }, ct: ct),
        };
        if (tlsEndpoint is not null)
        {
            // A QEMU that migrated before (a cancelled try) still has the object; its endpoint may differ. Removing
            // one that is not there fails, which is fine.
            steps.Add(IgnoreCommandErrorAsync(qmp.ExecuteAsync("object-del", new { id = TlsObjectId }, ct: ct)));
            steps.Add(qmp.ExecuteAsync("object-add", new Dictionary<string, object?>
            {
                ["qom-type"] = "tls-creds-x509",
                ["id"] = TlsObjectId,
                ["dir"] = _tlsDirectory,
                ["endpoint"] = tlsEndpoint,
                ["verify-peer"] = true,
            }, ct: ct));
        }
        var values = new Dictionary<string, object?> { ["tls-creds"] = tlsEndpoint is null ? "" : TlsObjectId };
        foreach (var (name, value) in parameters)
        {
            values[name] = value;
        }
        steps.Add(qmp.ExecuteAsync("migrate-set-parameters", values, ct: ct));
        // Every reply observed; the exception thrown is the first failed step's (WhenAll keeps the tasks' order).
        await Task.WhenAll(steps);
    }

    private static async Task IgnoreCommandErrorAsync(Task<System.Text.Json.JsonElement> command)
    {
        try
        {
            await command;
        }
        catch (QmpCommandException)
        {
        }
    }

    /// <summary>Picks a free port on the migration address and has QEMU listen there (again on a lost race).</summary>
    private async Task<string> ListenAsync(QmpClient qmp, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            int port;
            using (var probe = new TcpListener(Address, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }
            var host = Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address.ToString();
            var uri = $"tcp:{host}:{port}";
            try
            {
                await qmp.ExecuteAsync("migrate-incoming", new { uri }, ct: ct);
                return uri;
            }
            catch (QmpCommandException e) when (attempt < 3)
            {
                _logger.LogDebug("migrate-incoming on {Uri} failed ({Error}); trying another port", uri, e.Message);
            }
        }
    }

    private void RequireTls(MigrationPolicy policy)
    {
        if (policy.Tls && _tlsDirectory is null)
        {
            throw new MigrationException(
                $"host {_host.Options.HostName} has no migration TLS credentials; configure them (vmkerneld uses its --tls-dir) or turn TLS off in the migration policy", MigrationErrorKind.Precondition);
        }
    }

    private static long Ms(TimeSpan t) => (long)t.TotalMilliseconds;

    private static void ValidateId(string migrationId)
    {
        if (string.IsNullOrWhiteSpace(migrationId) || migrationId.Length > 128 || migrationId.Any(c => char.IsControl(c) || c == '/'))
        {
            throw new MigrationException($"migration id '{migrationId}' is not valid: use 1-128 printable characters without '/'", MigrationErrorKind.InvalidArgument);
        }
    }

    private sealed class EventsSeen
    {
        public volatile bool Own;
        public volatile bool Completed;
    }

    /// <summary>An incoming migration: its VM, the task that resumes it, and what serialises resuming against discarding.</summary>
    private sealed class Incoming(string vm)
    {
        public string Vm { get; } = vm;

        /// <summary>Set once the VM waits for its state; ends when it runs here (or cannot).</summary>
        public Task<VirtualMachine>? Resume { get; set; }

        /// <summary>Held while the leases are taken and the guest resumed, and while the migration is discarded.</summary>
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public CancellationTokenSource Discarded { get; } = new();

        public bool Resumed { get; set; }
    }

    private sealed class Outgoing(string vm, CancellationTokenSource cancel)
    {
        public string Vm { get; } = vm;

        public CancellationTokenSource Cancel { get; } = cancel;

        public string? Reason { get; set; }

        /// <summary>From the start of the source's set-up to QEMU accepting <c>migrate</c>.</summary>
        public TimeSpan Setup { get; set; }

        /// <summary>Stopwatch timestamp of QEMU's MIGRATION "completed" event; 0 before.</summary>
        public long CompletedEventAt;
    }
}
