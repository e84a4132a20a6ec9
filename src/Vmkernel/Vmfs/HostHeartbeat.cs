using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// This host's host-id lease (a sanlock-style delta lease on one heartbeat slot), its renewal, self-fencing,
/// and the observation of every other host's heartbeat.
/// <para>
/// Joining: a free slot is written with a fresh instance id and generation+1, then after 2 x maxIoLatency it is
/// read back; if another joiner wrote it meanwhile, its write must have landed by then and we try another slot.
/// A live slot (say of a crashed host) is taken only after its counter has not changed for hostDeadAfter.
/// </para>
/// <para>
/// Liveness is judged by change, with the observer's own monotonic clock: no two hosts' clocks are ever
/// compared. Writing is allowed only until (start of the last successful renewal + fenceAfter); after that the
/// host fences itself, calls the callback once and never writes again.
/// </para>
/// <para>
/// With a kill timer (<see cref="FenceKillTimer"/>), each renewal also re-arms a kernel timer that SIGKILLs this
/// process halfway between its fencing deadline and the earliest moment another host may take over its leases
/// (less maxIoLatency). Fencing stands the timer down only after every admitted write has finished, so a process
/// that stopped between a lease check and its write dies instead of writing late.
/// </para>
/// </summary>
internal sealed class HostHeartbeat : IDisposable, IWriteGate
{
    private readonly MetadataIo _io;
    private readonly VmfsTimings _timings;
    private readonly ILogger? _logger;
    private readonly Action<string>? _onFenced;
    private readonly Lock _observeLock = new();
    private readonly Observation?[] _observed;
    private readonly ManualResetEventSlim _stop = new(false);
    private readonly Lock _killTimerLock = new();
    private FenceKillTimer? _killTimer;
    private long _writesInFlight;
    private Thread? _renewer;
    private Thread? _watchdog;
    private long _writeDeadline;
    private long _lastRenewStart;
    private ulong _counter;
    private int _fenced;
    private int _disposed;

    public HostHeartbeat(MetadataIo io, string hostName, VmfsTimings timings, ILogger? logger, Action<string>? onFenced, bool killTimer = false)
    {
        _killTimer = killTimer ? FenceKillTimer.Create() : null;
        _io = io;
        HostName = hostName;
        _timings = timings;
        _logger = logger;
        _onFenced = onFenced;
        _observed = new Observation?[io.Superblock.MaxHosts];
    }

    public string HostName { get; }

    public int Slot { get; private set; } = -1;

    public ulong Generation { get; private set; }

    public ulong InstanceId { get; private set; }

    public bool IsFenced => Volatile.Read(ref _fenced) != 0;

    public string? FenceReason { get; private set; }

    private Superblock Sb => _io.Superblock;

    /// <summary>True while this host may write: joined, not fenced, and within fenceAfter of its last renewal.</summary>
    public bool CanWrite => Volatile.Read(ref _fenced) == 0 && Stopwatch.GetTimestamp() < Volatile.Read(ref _writeDeadline);

    /// <summary>
    /// How long after the start of the last successful renewal the kill timer fires: halfway between fenceAfter
    /// and hostDeadAfter - maxIoLatency, so a write issued just before the kill is visible before any takeover.
    /// </summary>
    public TimeSpan KillAfter => _timings.FenceAfter + ((_timings.HostDeadAfter - _timings.FenceAfter - _timings.MaxIoLatency) / 2);

    /// <summary>Counts the write first, then checks: fencing either sees it in flight or it sees the fence.</summary>
    public bool TryEnterWrite()
    {
        Interlocked.Increment(ref _writesInFlight);
        if (CanWrite)
        {
            return true;
        }

        Interlocked.Decrement(ref _writesInFlight);
        return false;
    }

    public void ExitWrite() => Interlocked.Decrement(ref _writesInFlight);

    public void EnsureCanWrite()
    {
        if (!CanWrite)
        {
            throw new VmfsException(VmfsErrorCode.Fenced,
                $"host '{HostName}' has fenced itself on this datastore ({FenceReason ?? "its heartbeat was not renewed within fenceAfter"}) and writes nothing more; " +
                "its leases may already belong to other hosts. Close the datastore and open it again to rejoin.");
        }
    }

    /// <summary>Acquires a heartbeat slot. Waits up to hostDeadAfter (plus margin) if every slot looks taken.</summary>
    public void Join(CancellationToken cancellation = default)
    {
        var slots = ReadAll();
        var random = Random.Shared;
        // A host that left cleanly gets its old slot back (stable slot numbers in `ds locks`); others spread randomly
        // so that hosts joining at once rarely race for one slot.
        var free = Enumerable.Range(0, Sb.MaxHosts).Where(i => slots[i].Slot is { Live: false })
            .OrderBy(i => slots[i].Slot!.HostName == HostName ? 0 : slots[i].Slot!.Generation == 0 ? 1 : 2)
            .ThenBy(_ => random.Next())
            .ToList();
        foreach (var candidate in free)
        {
            if (TryTake(candidate, slots[candidate].Slot!, cancellation))
            {
                return;
            }
        }

        // No free slot: wait to see which live-looking slots stop changing (crashed hosts), like a takeover.
        var deadline = Stopwatch.GetTimestamp() + Ticks(DeadAfter(null) + _timings.HostDeadAfter);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            cancellation.ThrowIfCancellationRequested();
            slots = ReadAll();
            Observe(slots);
            var dead = Enumerable.Range(0, Sb.MaxHosts)
                .Where(i => slots[i].Slot is { } s && (!s.Live || GetLiveness(i, s.Generation, refresh: false).IsDead))
                .OrderBy(_ => random.Next())
                .ToList();
            foreach (var candidate in dead)
            {
                if (TryTake(candidate, slots[candidate].Slot!, cancellation))
                {
                    return;
                }
            }

            cancellation.WaitHandle.WaitOne(PollInterval);
        }

        throw new VmfsException(VmfsErrorCode.NoHostSlot,
            $"all {Sb.MaxHosts} heartbeat slots of the datastore are held by live hosts; stop one of them, or reformat with more hosts (--max-hosts).");
    }

    /// <summary>Starts renewing every heartbeatInterval and the fencing watchdog.</summary>
    public void Start()
    {
        if (_killTimer is not null)
        {
            ArmKillTimer(Volatile.Read(ref _lastRenewStart));
            _logger?.LogInformation("Kill timer armed on the datastore for host {Host}: this process dies if it neither renews nor fences itself within {KillAfter:F1} s",
                HostName, KillAfter.TotalSeconds);
        }

        _renewer = new Thread(RenewLoop) { IsBackground = true, Name = $"vmfs-heartbeat-{Slot}", Priority = ThreadPriority.AboveNormal };
        _watchdog = new Thread(WatchdogLoop) { IsBackground = true, Name = $"vmfs-fence-{Slot}", Priority = ThreadPriority.AboveNormal };
        _renewer.Start();
        _watchdog.Start();
    }

    /// <summary>Whether the incarnation (slot, generation) is dead, reading the slot now when asked to.</summary>
    public HostLiveness GetLiveness(int slot, ulong generation, bool refresh = true)
    {
        if (slot < 0 || slot >= Sb.MaxHosts)
        {
            return new HostLiveness(slot, "", true, TimeSpan.Zero, TimeSpan.Zero, $"slot {slot} does not exist");
        }

        HeartbeatSlot? current;
        string? problem = null;
        if (refresh)
        {
            try
            {
                current = ReadSlot(slot);
                Observe(slot, current);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
            {
                current = null;
                problem = e.Message;
            }
        }

        lock (_observeLock)
        {
            var o = _observed[slot];
            if (o is null)
            {
                return new HostLiveness(slot, "", false, TimeSpan.Zero, DeadAfter(null), problem ?? "heartbeat slot unreadable");
            }

            var seen = o.Value;
            var deadAfter = DeadAfter(seen.Slot);
            if (!seen.Slot.Live || seen.Slot.Generation != generation)
            {
                return new HostLiveness(slot, seen.Slot.HostName, true, TimeSpan.Zero, deadAfter, null);
            }

            var unchanged = Stopwatch.GetElapsedTime(seen.FirstSeen);
            return new HostLiveness(slot, seen.Slot.HostName, problem is null && unchanged >= deadAfter, unchanged, deadAfter, problem);
        }
    }

    /// <summary>Reads every slot (one read) and records what changed. Corrupt slots come back with their error.</summary>
    public (HeartbeatSlot? Slot, string? Problem)[] ReadAll()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.HeartbeatOffset, Sb.MaxHosts);
        var result = new (HeartbeatSlot?, string?)[Sb.MaxHosts];
        for (var i = 0; i < Sb.MaxHosts; i++)
        {
            try
            {
                result[i] = (HeartbeatSlot.Read(data.AsSpan(i * s, s), Sb.HeartbeatSlotOffset(i), i), null);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
            {
                // A slot being written while we read can look torn without O_DIRECT; one re-read tells.
                try
                {
                    result[i] = (ReadSlot(i), null);
                }
                catch (VmfsException e2) when (e2.Code == VmfsErrorCode.Corrupt)
                {
                    result[i] = (null, e.Message);
                }
            }
        }

        return result;
    }

    public void Observe((HeartbeatSlot? Slot, string? Problem)[] slots)
    {
        for (var i = 0; i < slots.Length; i++)
        {
            if (slots[i].Slot is { } s)
            {
                Observe(i, s);
            }
        }
    }

    /// <summary>Stops renewing and frees the slot (unless fenced, when nothing may be written).</summary>
    public void Leave()
    {
        StopThreads();
        if (Slot < 0 || IsFenced)
        {
            return;
        }

        try
        {
            var mine = ReadSlot(Slot);
            if (mine.InstanceId == InstanceId)
            {
                WriteSlot(mine with { Live = false, Counter = mine.Counter + 1, TimestampUnixMs = NowMs() });
            }
        }
        catch (VmfsException e)
        {
            _logger?.LogWarning(e, "Could not free heartbeat slot {Slot} on leaving", Slot);
        }
    }

    /// <summary>Fences this host: no more writes, callback once.</summary>
    public void Fence(string reason)
    {
        if (Interlocked.Exchange(ref _fenced, 1) != 0)
        {
            return;
        }

        FenceReason = reason;
        _logger?.LogCritical("Host {Host} (slot {Slot}) fenced itself on the datastore: {Reason}", HostName, Slot, reason);
        StandDownKillTimer();
        try
        {
            _onFenced?.Invoke(reason);
        }
        catch (Exception e)
        {
            _logger?.LogError(e, "The fencing callback failed");
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            StopThreads();
            _stop.Dispose();
            lock (_killTimerLock)
            {
                _killTimer?.Dispose();
                _killTimer = null;
            }
        }
    }

    private TimeSpan PollInterval => TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 5, _timings.HeartbeatInterval.Ticks / 4));

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private TimeSpan DeadAfter(HeartbeatSlot? owner)
    {
        var own = _timings.HostDeadAfter;
        var theirs = owner is null ? TimeSpan.Zero : TimeSpan.FromMilliseconds(owner.HostDeadAfterMs);
        return own > theirs ? own : theirs;
    }

    private bool TryTake(int slot, HeartbeatSlot seen, CancellationToken cancellation)
    {
        var instance = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        var start = Stopwatch.GetTimestamp();
        var claim = new HeartbeatSlot
        {
            Live = true,
            Slot = slot,
            InstanceId = instance,
            Generation = seen.Generation + 1,
            Counter = seen.Counter + 1,
            TimestampUnixMs = NowMs(),
            HostDeadAfterMs = (uint)_timings.HostDeadAfter.TotalMilliseconds,
            HeartbeatIntervalMs = (uint)_timings.HeartbeatInterval.TotalMilliseconds,
            HostName = HostName,
        };
        // The slot must be unchanged since we judged it free or dead, else another joiner is already at it.
        var before = ReadSlot(slot);
        if (before != seen)
        {
            return false;
        }

        WriteSlot(claim);
        // Any joiner that read the slot before our write landed has written by now (maxIoLatency bounds both
        // its read-to-write delay and its write); reading our own claim back means nobody overwrote it.
        cancellation.WaitHandle.WaitOne(2 * _timings.MaxIoLatency);
        HeartbeatSlot after;
        try
        {
            after = ReadSlot(slot);
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
        {
            return false;
        }

        if (after.InstanceId != instance)
        {
            _logger?.LogInformation("Heartbeat slot {Slot} was taken by {Other} at the same time; trying another", slot, after.HostName);
            return false;
        }

        Slot = slot;
        InstanceId = instance;
        Generation = claim.Generation;
        _counter = claim.Counter;
        // The lease runs from the start of the claim, not its end: conservative by the join delay.
        Volatile.Write(ref _lastRenewStart, start);
        Volatile.Write(ref _writeDeadline, start + Ticks(_timings.FenceAfter));
        _logger?.LogInformation("Host {Host} joined the datastore in heartbeat slot {Slot} (generation {Generation})", HostName, slot, Generation);
        return true;
    }

    private void RenewLoop()
    {
        var interval = _timings.HeartbeatInterval;
        // The first renewal comes right after joining, so the gap between two heartbeats is never more than one
        // interval (plus the renewal's I/O), also just after the join's read-back delay.
        var first = true;
        while (first || !_stop.Wait(interval))
        {
            first = false;
            if (IsFenced)
            {
                return;
            }

            var start = Stopwatch.GetTimestamp();
            if (start - Volatile.Read(ref _lastRenewStart) >= Ticks(_timings.FenceAfter))
            {
                Fence($"no heartbeat renewal for {Stopwatch.GetElapsedTime(Volatile.Read(ref _lastRenewStart)).TotalSeconds:F1} s (fenceAfter {_timings.FenceAfter.TotalSeconds:F1} s)");
                return;
            }

            try
            {
                VmfsFaultInjection.At("heartbeat-renew");
                var all = ReadAll();
                var mine = all[Slot];
                if (mine.Slot is null)
                {
                    // Only we write our slot while we are alive; a torn or flipped copy is rewritten by this renewal.
                    _logger?.LogWarning("Own heartbeat slot {Slot} unreadable ({Problem}); rewriting it", Slot, mine.Problem);
                }
                else if (mine.Slot.InstanceId != InstanceId || !mine.Slot.Live)
                {
                    Fence($"heartbeat slot {Slot} now belongs to '{mine.Slot.HostName}' (this host was presumed dead)");
                    return;
                }

                // Counted like any write, so fencing waits for a renewal already on its way to the device.
                if (!TryEnterWrite())
                {
                    continue;
                }

                using (new AdmittedWrite(this))
                {
                    _counter++;
                    WriteSlot(new HeartbeatSlot
                    {
                        Live = true,
                        Slot = Slot,
                        InstanceId = InstanceId,
                        Generation = Generation,
                        Counter = _counter,
                        TimestampUnixMs = NowMs(),
                        HostDeadAfterMs = (uint)_timings.HostDeadAfter.TotalMilliseconds,
                        HeartbeatIntervalMs = (uint)_timings.HeartbeatInterval.TotalMilliseconds,
                        HostName = HostName,
                    });
                }

                Volatile.Write(ref _lastRenewStart, start);
                Volatile.Write(ref _writeDeadline, start + Ticks(_timings.FenceAfter));
                ArmKillTimer(start);
                Observe(all);
            }
            catch (VmfsException e)
            {
                _logger?.LogWarning(e, "Heartbeat renewal failed; fencing in {Remaining:F1} s unless a renewal succeeds",
                    (_timings.FenceAfter - Stopwatch.GetElapsedTime(Volatile.Read(ref _lastRenewStart))).TotalSeconds);
            }
        }
    }

    private void ArmKillTimer(long renewStart)
    {
        lock (_killTimerLock)
        {
            if (_killTimer is null || IsFenced)
            {
                return;
            }

            var at = renewStart + Ticks(KillAfter);
            _killTimer.Arm(TimeSpan.FromSeconds((double)(at - Stopwatch.GetTimestamp()) / Stopwatch.Frequency));
        }
    }

    /// <summary>Once fenced: waits until no admitted write is in flight, then disarms (or the timer fires first).</summary>
    private void StandDownKillTimer()
    {
        if (_killTimer is null)
        {
            return;
        }

        var spin = new SpinWait();
        while (Interlocked.Read(ref _writesInFlight) != 0)
        {
            spin.SpinOnce(sleep1Threshold: 20);
        }

        lock (_killTimerLock)
        {
            _killTimer?.Disarm();
        }

        _logger?.LogInformation("Kill timer stood down: host {Host} is fenced and has no write in flight", HostName);
    }

    private void WatchdogLoop()
    {
        // Separate from the renewer: a renewal stuck in I/O must not keep this host writing past its deadline.
        var tick = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 5, _timings.HeartbeatInterval.Ticks / 4));
        while (!_stop.Wait(tick))
        {
            if (!IsFenced && Stopwatch.GetTimestamp() >= Volatile.Read(ref _writeDeadline))
            {
                Fence($"no heartbeat renewal for {Stopwatch.GetElapsedTime(Volatile.Read(ref _lastRenewStart)).TotalSeconds:F1} s (fenceAfter {_timings.FenceAfter.TotalSeconds:F1} s)");
            }
        }
    }

    private void StopThreads()
    {
        if (_disposed != 0 && _renewer is null)
        {
            return;
        }

        try
        {
            _stop.Set();
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        if (_renewer is not null && _renewer != Thread.CurrentThread)
        {
            _renewer.Join();
        }

        if (_watchdog is not null && _watchdog != Thread.CurrentThread)
        {
            _watchdog.Join();
        }

        _renewer = null;
        _watchdog = null;
    }

    private void Observe(int slot, HeartbeatSlot seen)
    {
        lock (_observeLock)
        {
            if (_observed[slot] is not { } o || o.Slot != seen)
            {
                _observed[slot] = new Observation(seen, Stopwatch.GetTimestamp());
            }
        }
    }

    private HeartbeatSlot ReadSlot(int slot)
    {
        var offset = Sb.HeartbeatSlotOffset(slot);
        return _io.ReadParsed(offset, s => HeartbeatSlot.Read(s, offset, slot));
    }

    private void WriteSlot(HeartbeatSlot slot)
    {
        var offset = Sb.HeartbeatSlotOffset(slot.Slot);
        var sector = new byte[Sb.SectorSize];
        slot.Write(sector, offset);
        // Heartbeat writes bypass the fencing check of MetadataIo: joining happens before the lease exists,
        // and the renewer checks its own deadline above.
        _io.Device.Write(offset, sector);
    }

    private readonly record struct Observation(HeartbeatSlot Slot, long FirstSeen);
}
