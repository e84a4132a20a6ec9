using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.Controllers.VirtualMachines;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Reconcile;
using MigrationObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachineMigration;
using VmObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachine;

namespace Vmk.Operator.Controllers.Migrations;

/// <summary>
/// Drives a VirtualMachineMigration through the daemons' protocol (docs/migration.md): admission against the limits
/// (2 outgoing per source host, 5 in the cluster, the rest queued in creation order), target choice (spec.targetHost
/// or placement's best host other than the source), then PrepareIncoming on the target, MigrateOut on the source
/// (progress into status at most once a second) and FinishIncoming on the target. The transfer runs in a task of
/// its own so a worker is never held for the length of a migration; the reconciler only starts, cancels or
/// recovers it. While it runs the VirtualMachine's status.migration names it, which keeps the VM reconciler's
/// hands off; at the end status.host moves to the target in the same patch that clears status.migration.
/// A finished migration is never re-run. One found active with no task here (this operator restarted) is
/// settled from what both daemons report: completed there means finish it, anything else means cancel it.
/// </summary>
public sealed class VirtualMachineMigrationReconciler(
    IResourceApi<MigrationObject> api,
    Func<ObjectCache<MigrationObject>?> migrations,
    Func<ObjectCache<VmObject>?> vms,
    HostDirectory hosts,
    Placement placement,
    DaemonConnectionPool daemons,
    StatusWriter status,
    EventRecorder events,
    MigrationMetrics metrics,
    Action<ObjectKey> requeue,
    Func<bool> synced,
    ILogger<VirtualMachineMigrationReconciler> logger) : IReconciler<MigrationObject>
{
    public const string Finalizer = "vmkernel.io/virtualmachinemigration";
    public const int PerHostLimit = 2;
    public const int ClusterLimit = 5;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);
    /// <summary>No message at all from MigrateOut for this long (target or network gone quiet): give up.</summary>
    private static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(MigrationPolicies.NoProgressTimeoutSeconds + 15);

    /// <summary>How often the target is asked whether it still waits for the VM while the memory is sent.</summary>
    private static readonly TimeSpan TargetProbeInterval = TimeSpan.FromSeconds(2);
    /// <summary>Unanswered probes in a row that make the target lost (one may be a hiccup of a busy host).</summary>
    private const int TargetProbeMisses = 2;

    private readonly ConcurrentDictionary<ObjectKey, Running> _running = new();

    /// <summary>
    /// Migrations whose final phase this operator wrote, until its cache shows it. A task that ends requeues its
    /// migration at once; judged on the cache, which may still hold the last Running status, it looked like an
    /// orphan of a restart and was "settled" (Failed over a Succeeded, seen once in CI).
    /// </summary>
    private readonly ConcurrentDictionary<ObjectKey, string> _ended = new();

    /// <summary>Migrations whose task ended without writing a final phase, with the reason, for the settling.</summary>
    private readonly ConcurrentDictionary<ObjectKey, string> _abandoned = new();
    private readonly Lock _admission = new();

    public async Task<ReconcileResult> ReconcileAsync(MigrationObject m, CancellationToken ct)
    {
        var key = ObjectKey.Of(m);
        if (!synced())
        {
            // Judged on half-listed caches a restarted operator took its VMs for deleted and its hosts for gone:
            // a running migration was settled without clearing its VM's status.migration, which then stayed
            // Migrating for good, and a new one failed with VmNotFound.
            return ReconcileResult.RequeueAfter(TimeSpan.FromSeconds(1));
        }
        if (Finalizers.IsBeingDeleted(m))
        {
            if (Finalizers.Has(m, Finalizer))
            {
                if (_running.TryGetValue(key, out var run))
                {
                    run.Cancel("VirtualMachineMigration deleted");
                    await run.Task.WaitAsync(TimeSpan.FromSeconds(90), ct).ConfigureAwait(false);
                }
                else if (m.IsActive && !_ended.ContainsKey(key))
                {
                    await SettleOrphanAsync(m, "the VirtualMachineMigration was deleted", ct).ConfigureAwait(false);
                }
                await Finalizers.RemoveAsync(api, m, Finalizer, ct).ConfigureAwait(false);
                _ended.TryRemove(key, out _);
            }
            return ReconcileResult.Done;
        }
        if (m.IsFinished)
        {
            _ended.TryRemove(key, out _);
            return ReconcileResult.Done;
        }
        if (_running.ContainsKey(key) || _ended.ContainsKey(key))
        {
            // Running here, or ended here with its final phase written (a finished migration never runs again):
            // the cache is behind, and the watch event of that write is on its way.
            return ReconcileResult.Done;
        }
        if (m.IsActive)
        {
            var why = _abandoned.TryRemove(key, out var reason) ? reason : "the operator restarted while it ran";
            await SettleOrphanAsync(m, why, ct).ConfigureAwait(false);
            return ReconcileResult.Done;
        }

        var vm = vms()?.Get(m.Namespace, m.VmName);
        if (vm is null)
        {
            return await FailAsync(m, "VmNotFound", $"VirtualMachine {m.VmName} does not exist in namespace {m.Namespace}", ct).ConfigureAwait(false);
        }
        var source = vm.AssignedHost;
        if (source is null || vm.Phase is not ("Running" or "Migrating"))
        {
            return await FailAsync(m, "VmNotRunning", $"VirtualMachine {m.VmName} is {vm.Phase ?? "not placed"}{(source is null ? "" : " on host " + source)}: only a running VM can be live-migrated", ct).ConfigureAwait(false);
        }
        var owner = CustomObject.Str(vm.Status, "migration", "name");
        if (owner is not null && owner != m.Name && migrations()?.Get(m.Namespace, owner) is { IsFinished: false })
        {
            return await QueueAsync(m, $"VirtualMachine {m.VmName} is being migrated by {owner}; this one waits for it", ct).ConfigureAwait(false);
        }

        string? queued, unfit = null;
        lock (_admission)
        {
            queued = Blocked(key);
            if (queued is null)
            {
                var (chosen, why) = placement.ChooseMigrationTarget(vm, source, m.TargetHost);
                if (chosen is null)
                {
                    unfit = why;
                }
                else
                {
                    // Reserved before any await: a second migration admitted at once sees this one counted.
                    _running[key] = new Running(source, chosen);
                }
            }
        }
        if (queued is not null)
        {
            return await QueueAsync(m, queued, ct).ConfigureAwait(false);
        }
        if (unfit is not null)
        {
            var text = m.TargetHost is null ? "no host can take the VM: " + unfit : $"host {m.TargetHost} cannot take the VM: {unfit}";
            return await FailAsync(m, "NoTarget", text, ct).ConfigureAwait(false);
        }

        var running = _running[key];
        try
        {
            m = await Finalizers.AddAsync(api, m, Finalizer, ct).ConfigureAwait(false);
            var mark = MarkVmAsync(vm, m.Name, "Scheduling", CancellationToken.None);
            m = await status.PatchAsync(m, MigrationObject.Plural, new JsonObject
            {
                ["phase"] = "Scheduling",
                ["sourceHost"] = running.Source,
                ["targetHost"] = running.Target,
                ["startTime"] = Now(),
                ["message"] = $"migrating {m.VmName} from {running.Source} to {running.Target}",
                ["observedGeneration"] = m.Metadata.Generation ?? 0,
            }, ct).ConfigureAwait(false);
            await mark.ConfigureAwait(false);
        }
        catch
        {
            _running.TryRemove(key, out _);
            throw;
        }
        // The event is stamped now, before any of the task's own, but written beside the task: an API round trip in
        // front of PrepareIncoming would add to the migration's total time.
        var scheduled = events.NormalAsync(m, "Scheduled", $"migrating {m.VmName} from host {running.Source} to host {running.Target}", ct);
        metrics.InProgress.Inc();
        running.Task = Task.Run(() => RunAsync(m, running));
        await scheduled.ConfigureAwait(false);
        return ReconcileResult.Done;
    }

    /// <summary>Why this queued migration may not start yet (null: it may): see <see cref="MigrationAdmission"/>.</summary>
    private string? Blocked(ObjectKey myKey) =>
        MigrationAdmission.Blocked(migrations()?.List() ?? [], _running.Select(r => (r.Key, r.Value.Source)), q => vms()?.Get(q.Namespace, q.VmName)?.AssignedHost, myKey);

    private async Task RunAsync(MigrationObject m, Running run)
    {
        var key = ObjectKey.Of(m);
        var ns = m.Namespace ?? "default";
        var vmName = VmNames.DaemonName(ns, m.VmName);
        var id = m.Metadata.Uid ?? Guid.NewGuid().ToString("N");
        var policy = MigrationPolicies.Build(m);
        var started = DateTimeOffset.UtcNow;
        var ct = run.Token;
        string result = "failed";
        try
        {
            var sourceHost = hosts.Get(run.Source);
            var targetHost = hosts.Get(run.Target);
            if (sourceHost?.Endpoint is null || targetHost?.Endpoint is null)
            {
                throw new MigrationFailure("HostGone", $"host {(sourceHost?.Endpoint is null ? run.Source : run.Target)} is gone or has no endpoint");
            }
            var sourceApi = new MigrationService.MigrationServiceClient(daemons.Channel(sourceHost.Name, sourceHost.Endpoint));
            var targetApi = new MigrationService.MigrationServiceClient(daemons.Channel(targetHost.Name, targetHost.Endpoint));
            run.SourceApi = sourceApi;
            run.TargetApi = targetApi;
            run.Id = id;
            run.VmName = vmName;

            var vm = vms()?.Get(m.Namespace, m.VmName) ?? throw new MigrationFailure("VmNotFound", $"VirtualMachine {m.VmName} was deleted");
            // Status writes run beside the daemons' calls, not before them: the phases are for people to read, and
            // every write in line would add an API round trip to the migration's total time.
            var preparing = PhaseAndMarkAsync(m, vm, "Preparing", $"preparing host {run.Target} to receive {m.VmName}");
            PrepareIncomingResponse prepared;
            try
            {
                // Waits for the channel: a target whose daemon just restarted is Ready before this operator's channel reconnects.
                prepared = await targetApi.PrepareIncomingAsync(new PrepareIncomingRequest { MigrationId = id, Spec = VmSpecBuilder.Build(vm), Policy = policy },
                    new CallOptions(deadline: Rpc.Deadline(120), cancellationToken: ct).WithWaitForReady()).ConfigureAwait(false);
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                await ((Task)preparing).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                throw new MigrationFailure("PrepareFailed", $"host {run.Target} could not prepare the VM: {Rpc.Describe(e)}");
            }
            m = await preparing.ConfigureAwait(false);

            MigrationProgress? last = null;
            var lastWrite = DateTimeOffset.MinValue;
            using (var stall = CancellationTokenSource.CreateLinkedTokenSource(ct))
            using (var unwatch = new CancellationTokenSource())
            {
                stall.CancelAfter(StallTimeout);
                // A target whose daemon died keeps its QEMU (every QEMU outlives its daemon), which takes the whole
                // state in while the source completes and gives the VM up; nobody can then take the leases there and
                // resume the guest. Watched alongside the transfer, a lost target stops it while the source still runs.
                string? targetLost = null;
                var watch = Task.Run(async () =>
                {
                    targetLost = await WatchTargetAsync(targetHost, vmName, unwatch.Token).ConfigureAwait(false);
                    await stall.CancelAsync().ConfigureAwait(false);
                }, CancellationToken.None);
                try
                {
                    using var call = sourceApi.MigrateOut(new MigrateOutRequest { MigrationId = id, Vm = vmName, TargetUri = prepared.IncomingUri, Policy = policy },
                        cancellationToken: stall.Token);
                    m = await PhaseAndMarkAsync(m, vm, "Running", $"sending {m.VmName}'s memory to host {run.Target}").ConfigureAwait(false);
                    await foreach (var p in call.ResponseStream.ReadAllAsync(stall.Token).ConfigureAwait(false))
                    {
                        stall.CancelAfter(StallTimeout);
                        last = p;
                        if (p.Phase == "completed")
                        {
                            break;
                        }
                        var switchover = p.Phase == "device";
                        if (switchover || DateTimeOffset.UtcNow - lastWrite >= ProgressInterval)
                        {
                            lastWrite = DateTimeOffset.UtcNow;
                            m = await PhaseAsync(m, switchover ? "Switchover" : "Running", switchover ? "switching over: the guest is paused on the source" : $"sending {m.VmName}'s memory to host {run.Target}",
                                Progress(vm, p)).ConfigureAwait(false);
                        }
                    }
                }
                catch (Exception e) when (e is RpcException or OperationCanceledException && !ct.IsCancellationRequested)
                {
                    if (targetLost is not null)
                    {
                        throw new MigrationFailure("TargetLost", $"{targetLost}; the transfer was stopped before host {run.Source} gave the VM up");
                    }
                    if (stall.IsCancellationRequested)
                    {
                        throw new MigrationFailure("NoProgress", $"host {run.Source} reported no progress for {StallTimeout.TotalSeconds:0} s");
                    }
                    throw new MigrationFailure(e is RpcException { StatusCode: StatusCode.Aborted } ? "Aborted" : "TransferFailed",
                        $"the transfer from host {run.Source} failed: {Rpc.Describe(e)}");
                }
                finally
                {
                    await unwatch.CancelAsync().ConfigureAwait(false);
                    // Ends by cancellation (or an RpcException of the cancelled probe): observed, never rethrown.
                    await watch.ContinueWith(t => _ = t.Exception, TaskScheduler.Default).ConfigureAwait(false);
                }
            }
            if (last?.Phase != "completed")
            {
                ct.ThrowIfCancellationRequested();
                throw new MigrationFailure("TransferFailed", $"host {run.Source} ended the transfer without completing it (last phase {last?.Phase ?? "none"})");
            }
            // From here on the source has given the VM up: only moving forward is safe, whatever happens to this operator.
            run.Completed = true;
            Vm? resumed = null;
            Exception? finishError = null;
            var finishing = System.Diagnostics.Stopwatch.StartNew();
            for (var attempt = 0; attempt < 3 && resumed is null; attempt++)
            {
                try
                {
                    resumed = await targetApi.FinishIncomingAsync(new FinishIncomingRequest { MigrationId = id, Vm = vmName }, deadline: Rpc.Deadline(60)).ConfigureAwait(false);
                }
                catch (RpcException e)
                {
                    finishError = e;
                    logger.LogWarning(e, "FinishIncoming of {Vm} on {Host} failed (attempt {Attempt})", vmName, run.Target, attempt + 1);
                }
            }
            var finishMs = finishing.ElapsedMilliseconds;
            vm = vms()?.Get(m.Namespace, m.VmName) ?? vm;
            await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["host"] = run.Target, ["migration"] = null }, CancellationToken.None).ConfigureAwait(false);
            // What the guest notices: from the source's QEMU pausing it to the target resuming it (the two hosts'
            // clocks). Should those disagree by more than the pause, the parts each side measured on its own clock:
            // QEMU's stop-and-copy, the source's handover and the FinishIncoming call.
            var downtimeMs = GuestPauseMs(last, resumed) ?? last.DowntimeMs + last.HandoverMs + finishMs;
            var progress = Progress(vm, last);
            progress["percent"] = 100;
            progress["remainingBytes"] = 0;
            if (resumed is null)
            {
                await FinishAsync(m, "Failed", "ResumeFailed", $"the memory reached host {run.Target} and the source let the VM go, but the target could not take the disk leases and resume it: {Rpc.Describe(finishError!)}",
                    progress, downtimeMs).ConfigureAwait(false);
                await events.WarningAsync(vm, "MigrationFailed", $"moved to host {run.Target} by {m.Name} but not resumed: {Rpc.Describe(finishError!)}", CancellationToken.None).ConfigureAwait(false);
                return;
            }
            result = "succeeded";
            metrics.Downtime.Observe(downtimeMs / 1000.0);
            metrics.Duration.Observe((DateTimeOffset.UtcNow - started).TotalSeconds);
            metrics.TransferredBytes.Inc(last.TransferredBytes);
            await FinishAsync(m, "Succeeded", "Completed",
                $"{m.VmName} runs on host {run.Target}: {Mi(last.TransferredBytes)} sent in {last.TotalMs} ms, downtime {downtimeMs} ms", progress, downtimeMs).ConfigureAwait(false);
            await events.NormalAsync(vm, "Migrated", $"live-migrated from host {run.Source} to host {run.Target} by {m.Name} (downtime {downtimeMs} ms)", CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (!run.Completed)
        {
            var cancelled = ct.IsCancellationRequested;
            var (reason, message) = e switch
            {
                _ when cancelled => ("Cancelled", $"cancelled: {run.CancelReason}"),
                MigrationFailure f => (f.Reason, f.Message),
                _ => ("Error", Rpc.Describe(e)),
            };
            result = cancelled ? "cancelled" : "failed";
            await CancelOnHostsAsync(run, message).ConfigureAwait(false);
            if (await RunsOnTargetAsync(run).ConfigureAwait(false))
            {
                // The target resumes the guest by itself once the source let it go (docs/migration.md): a report of
                // the source lost after its completion (its daemon restarted in that moment) is no failure, and the
                // target, holding the only copy, refused the cancel.
                result = "succeeded";
                await SettledOnTargetAsync(m, run, $"the source completed and let it go, but its report was lost ({message})").ConfigureAwait(false);
                return;
            }
            var vm = vms()?.Get(m.Namespace, m.VmName);
            var where = await DescribeSourceAsync(run).ConfigureAwait(false);
            if (vm is not null)
            {
                await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["migration"] = null }, CancellationToken.None).ConfigureAwait(false);
                await events.WarningAsync(vm, cancelled ? "MigrationCancelled" : "MigrationFailed", $"{m.Name}: {message}; {where}", CancellationToken.None).ConfigureAwait(false);
            }
            try
            {
                await FinishAsync(m, cancelled ? "Cancelled" : "Failed", reason, $"{message}; {where}", null, null).ConfigureAwait(false);
            }
            catch (Exception writeError) when (cancelled)
            {
                logger.LogDebug(writeError, "Status of deleted migration {Migration} not written", key);
            }
        }
        catch (Exception e)
        {
            logger.LogError(e, "Migration {Migration} completed on the source but its bookkeeping failed", key);
            _abandoned[key] = $"its bookkeeping failed after the source completed ({e.Message})";
        }
        finally
        {
            metrics.Total.WithLabels(result).Inc();
            metrics.InProgress.Dec();
            _running.TryRemove(key, out _);
            // The slot is free: the queue moves (and a deletion waiting on this task goes on).
            foreach (var q in migrations()?.List() ?? [])
            {
                if (q.IsQueued || ObjectKey.Of(q) == key)
                {
                    requeue(ObjectKey.Of(q));
                }
            }
            run.Dispose();
        }
    }

    /// <summary>
    /// Asks the target every <see cref="TargetProbeInterval"/> for the VM waiting there; returns why the target is
    /// lost (its daemon unreachable <see cref="TargetProbeMisses"/> times in a row, the waiting VM gone or its QEMU
    /// exited), or throws when <paramref name="ct"/> ends the watch.
    /// </summary>
    private async Task<string> WatchTargetAsync(Apis.V1Alpha1.Host target, string vmName, CancellationToken ct)
    {
        var misses = 0;
        while (true)
        {
            // A probe interval: the watch runs as long as the transfer, which can take minutes.
            await Task.Delay(TargetProbeInterval, ct).ConfigureAwait(false);
            try
            {
                var vm = await daemons.Vms(target.Name, target.Endpoint!).GetAsync(new VmRef { Name = vmName }, deadline: Rpc.Deadline(5), cancellationToken: ct).ConfigureAwait(false);
                if (vm.Status.State is VmState.Stopped or VmState.Failed)
                {
                    return $"the VM's waiting QEMU on host {target.Name} exited ({vm.Status.Reason})";
                }
                misses = 0;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                return $"host {target.Name} no longer has the VM waiting for the transfer";
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                if (++misses >= TargetProbeMisses)
                {
                    return $"host {target.Name} stopped answering during the transfer ({Rpc.Describe(e)})";
                }
                logger.LogWarning("Target {Host} of migration of {Vm} did not answer: {Error}", target.Name, vmName, Rpc.Describe(e));
            }
        }
    }

    /// <summary>
    /// The guest's pause across both hosts: the target's Running since (after FinishIncoming) minus the source's
    /// paused_at; null when either is missing or the clocks disagree (a pause shorter than QEMU's own stop-and-copy).
    /// </summary>
    internal static long? GuestPauseMs(MigrationProgress completed, Vm? resumed)
    {
        if (completed.PausedAt is null || resumed?.Status?.Since is null)
        {
            return null;
        }
        var pause = (resumed.Status.Since.ToDateTimeOffset() - completed.PausedAt.ToDateTimeOffset()).TotalMilliseconds;
        return pause >= completed.DowntimeMs ? (long)Math.Ceiling(pause) : null;
    }

    private async Task<MigrationObject> PhaseAndMarkAsync(MigrationObject m, VmObject vm, string phase, string message)
    {
        var mark = MarkVmAsync(vm, m.Name, phase, CancellationToken.None);
        var updated = await PhaseAsync(m, phase, message, null).ConfigureAwait(false);
        await mark.ConfigureAwait(false);
        return updated;
    }

    private static JsonObject Progress(VmObject vm, MigrationProgress p)
    {
        var sent = p.TransferredBytes;
        var total = sent + p.RemainingBytes;
        return new JsonObject
        {
            ["percent"] = total <= 0 ? 0 : (int)Math.Clamp(100 * sent / total, 0, 100),
            ["totalBytes"] = vm.MemoryBytes,
            ["transferredBytes"] = sent,
            ["remainingBytes"] = p.RemainingBytes,
            ["dirtyRateBytesPerSecond"] = p.DirtyPagesRate * 4096,
            ["iteration"] = p.Iteration,
        };
    }

    private async Task<MigrationObject> PhaseAsync(MigrationObject m, string phase, string message, JsonObject? progress)
    {
        var s = new JsonObject { ["phase"] = phase, ["message"] = message };
        if (progress is not null)
        {
            s["progress"] = progress;
        }
        var before = m.Phase;
        m = await status.PatchAsync(m, MigrationObject.Plural, s, CancellationToken.None).ConfigureAwait(false);
        if (before != phase)
        {
            await events.NormalAsync(m, phase, message, CancellationToken.None).ConfigureAwait(false);
        }
        return m;
    }

    private async Task FinishAsync(MigrationObject m, string phase, string reason, string message, JsonObject? progress, long? downtimeMs)
    {
        var s = new JsonObject
        {
            ["phase"] = phase,
            ["message"] = message,
            ["completionTime"] = Now(),
            ["conditions"] = Conditions.Set(m.Status, "Ready", phase == "Succeeded", reason, message, m.Metadata.Generation),
        };
        if (progress is not null)
        {
            s["progress"] = progress;
        }
        if (downtimeMs is { } d)
        {
            s["downtime"] = d.ToString(CultureInfo.InvariantCulture) + "ms";
        }
        await status.PatchAsync(m, MigrationObject.Plural, s, CancellationToken.None).ConfigureAwait(false);
        _ended[ObjectKey.Of(m)] = phase;
        await (phase == "Succeeded" ? events.NormalAsync(m, reason, message, CancellationToken.None) : events.WarningAsync(m, reason, message, CancellationToken.None)).ConfigureAwait(false);
        logger.LogInformation("Migration {Namespace}/{Migration} {Phase}: {Message}", m.Namespace, m.Name, phase, message);
    }

    private async Task<ReconcileResult> FailAsync(MigrationObject m, string reason, string message, CancellationToken ct)
    {
        await FinishAsync(m, "Failed", reason, message, null, null).ConfigureAwait(false);
        metrics.Total.WithLabels("failed").Inc();
        var vm = vms()?.Get(m.Namespace, m.VmName);
        if (vm is not null)
        {
            await events.WarningAsync(vm, "MigrationFailed", $"{m.Name}: {message}", ct).ConfigureAwait(false);
        }
        return ReconcileResult.Done;
    }

    private async Task<ReconcileResult> QueueAsync(MigrationObject m, string message, CancellationToken ct)
    {
        var before = CustomObject.Str(m.Status, "message");
        await status.PatchAsync(m, MigrationObject.Plural, new JsonObject { ["phase"] = "Pending", ["message"] = message }, ct).ConfigureAwait(false);
        if (before != message)
        {
            await events.NormalAsync(m, "Queued", message, ct).ConfigureAwait(false);
        }
        // A finishing migration requeues the queue; the timer only covers a VM that stops being migrated by others.
        return ReconcileResult.RequeueAfter(TimeSpan.FromSeconds(30));
    }

    private async Task MarkVmAsync(VmObject vm, string migration, string phase, CancellationToken ct)
    {
        var current = vms()?.Get(vm.Namespace, vm.Name) ?? vm;
        await status.PatchAsync(current, VmObject.Plural, new JsonObject
        {
            ["migration"] = new JsonObject { ["name"] = migration, ["phase"] = phase },
        }, ct).ConfigureAwait(false);
    }

    private async Task CancelOnHostsAsync(Running run, string reason)
    {
        foreach (var (api, side) in new[] { (run.TargetApi, run.Target), (run.SourceApi, run.Source) })
        {
            if (api is null || run.Id is null)
            {
                continue;
            }
            try
            {
                await api.CancelAsync(new CancelMigrationRequest { MigrationId = run.Id, Vm = run.VmName ?? "", Reason = reason }, deadline: Rpc.Deadline(60)).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                logger.LogWarning("Cancel of migration {Id} on {Host} failed: {Error}", run.Id, side, Rpc.Describe(e));
            }
        }
    }

    /// <summary>Whether the target runs the VM, resumed there by this migration (an incoming VM stays paused, marked, until then).</summary>
    private async Task<bool> RunsOnTargetAsync(Running run)
    {
        try
        {
            return await VmOnHostAsync(run.Target, run.VmName).ConfigureAwait(false) is { } vm
                && vm.Status.State == VmState.Running && string.IsNullOrEmpty(vm.Status.Migration);
        }
        catch (RpcException)
        {
            return false;
        }
    }

    /// <summary>The VM moved although this run lost track of the source: its host is the target from now on.</summary>
    private async Task SettledOnTargetAsync(MigrationObject m, Running run, string how)
    {
        var vm = vms()?.Get(m.Namespace, m.VmName);
        if (vm is not null)
        {
            await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["host"] = run.Target, ["migration"] = null }, CancellationToken.None).ConfigureAwait(false);
            await events.NormalAsync(vm, "Migrated", $"live-migrated from host {run.Source} to host {run.Target} by {m.Name} ({how})", CancellationToken.None).ConfigureAwait(false);
        }
        try
        {
            await FinishAsync(m, "Succeeded", "Completed", $"{m.VmName} runs on host {run.Target}: {how}", null, null).ConfigureAwait(false);
        }
        catch (k8s.Autorest.HttpOperationException e) when (Finalizers.IsBeingDeleted(m))
        {
            logger.LogDebug(e, "Status of deleted migration {Migration} not written", m.Name);
        }
    }

    /// <summary>Where the guest is now, for the failure message a person reads.</summary>
    private async Task<string> DescribeSourceAsync(Running run)
    {
        try
        {
            return await VmOnHostAsync(run.Source, run.VmName).ConfigureAwait(false) is { } vm
                ? $"the VM stays on host {run.Source} ({vm.Status.State.ToString().ToLowerInvariant()})"
                : $"the VM stays on host {run.Source}";
        }
        catch (RpcException e)
        {
            return $"the VM's state on host {run.Source} is unknown: {Rpc.Describe(e)}";
        }
    }

    /// <summary>The VM as one host's daemon has it; null when the host (or the VM's daemon name) is not known. Throws what the daemon answered otherwise.</summary>
    private async Task<Vm?> VmOnHostAsync(string hostName, string? vmName)
    {
        var host = hosts.Get(hostName);
        if (host?.Endpoint is null || vmName is null)
        {
            return null;
        }
        return await daemons.Vms(host.Name, host.Endpoint).GetAsync(new VmRef { Name = vmName }, deadline: Rpc.Deadline(10)).ConfigureAwait(false);
    }

    /// <summary>
    /// An active migration with no task in this process: this operator restarted (or it was deleted meanwhile).
    /// Completed on the source (the VM is gone there and waits or runs on the target) means finish it; anything
    /// else is cancelled on both hosts, leaving the guest on the source. Never a guest running twice.
    /// </summary>
    private async Task SettleOrphanAsync(MigrationObject m, string why, CancellationToken ct)
    {
        var ns = m.Namespace ?? "default";
        var vmName = VmNames.DaemonName(ns, m.VmName);
        var id = m.Metadata.Uid ?? "";
        var source = hosts.Get(CustomObject.Str(m.Status, "sourceHost") ?? "");
        var target = hosts.Get(CustomObject.Str(m.Status, "targetHost") ?? "");
        var vm = vms()?.Get(m.Namespace, m.VmName);
        if (source?.Endpoint is null || target?.Endpoint is null)
        {
            if (vm is not null)
            {
                await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["migration"] = null }, ct).ConfigureAwait(false);
            }
            await FinishAsync(m, "Failed", "HostGone", $"{why}, and host {(source?.Endpoint is null ? "source" : "target")} is gone", null, null).ConfigureAwait(false);
            return;
        }
        async Task<Vm?> Get(Apis.V1Alpha1.Host h)
        {
            try
            {
                return await daemons.Vms(h.Name, h.Endpoint!).GetAsync(new VmRef { Name = vmName }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                return null;
            }
        }
        var onSource = await Get(source).ConfigureAwait(false);
        var onTarget = await Get(target).ConfigureAwait(false);
        var targetApi = new MigrationService.MigrationServiceClient(daemons.Channel(target.Name, target.Endpoint));
        // The source gave the VM up (its definition leaves it a moment after its QEMU quit) and the target has it:
        // finish there. A target already running it is the only copy, whatever the source's record still says.
        var targetRuns = onTarget is { Status.State: VmState.Running } && string.IsNullOrEmpty(onTarget.Status.Migration);
        if (onTarget is not null && (onSource is null || (targetRuns && onSource.Status.State is VmState.Stopped)))
        {
            if (onTarget.Status.Migration == $"incoming:{id}")
            {
                await targetApi.FinishIncomingAsync(new FinishIncomingRequest { MigrationId = id, Vm = vmName }, deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
            }
            if (vm is not null)
            {
                await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["host"] = target.Name, ["migration"] = null }, ct).ConfigureAwait(false);
            }
            metrics.Total.WithLabels("succeeded").Inc();
            await FinishAsync(m, "Succeeded", "Completed", $"{m.VmName} runs on host {target.Name} ({why}; the source had completed, the target was finished)", null, null).ConfigureAwait(false);
            return;
        }
        var run = new Running(source.Name, target.Name)
        {
            Id = id,
            VmName = vmName,
            SourceApi = new MigrationService.MigrationServiceClient(daemons.Channel(source.Name, source.Endpoint)),
            TargetApi = targetApi,
        };
        await CancelOnHostsAsync(run, why).ConfigureAwait(false);
        run.Dispose();
        if (vm is not null)
        {
            await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["migration"] = null }, ct).ConfigureAwait(false);
        }
        metrics.Total.WithLabels(Finalizers.IsBeingDeleted(m) ? "cancelled" : "failed").Inc();
        var stays = onSource is null ? "" : $"; the VM stays on host {source.Name} ({onSource.Status.State.ToString().ToLowerInvariant()})";
        try
        {
            await FinishAsync(m, Finalizers.IsBeingDeleted(m) ? "Cancelled" : "Failed", "Interrupted", $"cancelled: {why}{stays}", null, null).ConfigureAwait(false);
        }
        catch (k8s.Autorest.HttpOperationException) when (Finalizers.IsBeingDeleted(m))
        {
        }
    }

    private static string Now() => DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

    private static string Mi(long bytes) => (bytes >> 20).ToString(CultureInfo.InvariantCulture) + " MiB";

    private sealed class MigrationFailure(string reason, string message) : Exception(message)
    {
        public string Reason { get; } = reason;
    }

    /// <summary>A migration this process drives: its hosts, its cancellation and, once started, its task.</summary>
    private sealed class Running(string source, string target) : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();

        public string Source { get; } = source;

        public string Target { get; } = target;

        public Task Task { get; set; } = Task.CompletedTask;

        public CancellationToken Token => _cts.Token;

        public string? CancelReason { get; private set; }

        public string? Id { get; set; }

        public string? VmName { get; set; }

        /// <summary>The source reported completion: past the point of no return.</summary>
        public bool Completed { get; set; }

        public MigrationService.MigrationServiceClient? SourceApi { get; set; }

        public MigrationService.MigrationServiceClient? TargetApi { get; set; }

        public void Cancel(string reason)
        {
            if (Completed)
            {
                return;
            }
            CancelReason ??= reason;
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        public void Dispose() => _cts.Dispose();
    }
}
