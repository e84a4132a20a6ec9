using System.Diagnostics;
using Vmk.Operator.Runtime.Metrics;

namespace Vmk.Operator.Runtime.Queue;

/// <summary>
/// client-go's rate-limited work queue, small. A key is queued at most once however often it is added (dirty set);
/// a key that is being processed and added again is handed out again only after <see cref="Done"/>, so one key is
/// never worked on by two workers at once. <see cref="AddAfter"/> delays an add (the earliest pending delay wins);
/// <see cref="AddRateLimited"/> delays by the key's failure count until <see cref="Forget"/>.
/// <see cref="ShutDown"/> refuses new adds; keys still queued are handed out until the queue is empty, then
/// <see cref="GetAsync"/> reports the end; <see cref="ShutDownWithDrainAsync"/> also waits for keys in flight.
/// </summary>
public sealed class WorkQueue<TKey> : IDisposable
    where TKey : notnull
{
    private readonly Lock _gate = new();
    private readonly Queue<TKey> _queue = new();
    private readonly Dictionary<TKey, long> _dirty = [];
    private readonly Dictionary<TKey, long> _processing = [];
    private readonly Dictionary<TKey, long> _waiting = [];
    private readonly Dictionary<TKey, int> _failures = [];
    private readonly CancellationTokenSource _stopTimers = new();
    private readonly ExponentialBackoffRateLimiter _limiter;
    private readonly TimeProvider _time;
    private readonly string _name;
    private readonly RuntimeMetrics _metrics;
    private TaskCompletionSource _changed = NewSignal();
    private bool _shuttingDown;

    public WorkQueue(string name, ExponentialBackoffRateLimiter? limiter = null, RuntimeMetrics? metrics = null, TimeProvider? time = null)
    {
        _name = name;
        _limiter = limiter ?? new ExponentialBackoffRateLimiter();
        _metrics = metrics ?? RuntimeMetrics.Default;
        _time = time ?? TimeProvider.System;
        _metrics.WorkqueueDepth.WithLabels(_name).Set(0);
    }

    public string Name => _name;

    /// <summary>Keys waiting for a worker (not those in flight or delayed).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Keys a worker took and has not marked <see cref="Done"/> yet.</summary>
    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                return _processing.Count;
            }
        }
    }

    public bool IsShuttingDown
    {
        get
        {
            lock (_gate)
            {
                return _shuttingDown;
            }
        }
    }

    public void Add(TKey key)
    {
        lock (_gate)
        {
            AddLocked(key);
        }
    }

    /// <summary>Adds <paramref name="key"/> once <paramref name="delay"/> has passed; an earlier pending add of it wins.</summary>
    public void AddAfter(TKey key, TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
        {
            Add(key);
            return;
        }
        long readyAt;
        lock (_gate)
        {
            if (_shuttingDown)
            {
                return;
            }
            readyAt = _time.GetTimestamp() + (long)(delay.TotalSeconds * _time.TimestampFrequency);
            if (_waiting.TryGetValue(key, out var pending) && pending <= readyAt)
            {
                return;
            }
            _waiting[key] = readyAt;
        }
        _ = FireAfterAsync(key, readyAt, delay);
    }

    /// <summary>Counts a failure of <paramref name="key"/> and adds it after the backoff that count earns.</summary>
    public void AddRateLimited(TKey key)
    {
        int failures;
        lock (_gate)
        {
            failures = _failures[key] = _failures.GetValueOrDefault(key) + 1;
        }
        _metrics.WorkqueueRetries.WithLabels(_name).Inc();
        AddAfter(key, _limiter.When(failures));
    }

    /// <summary>Clears the failure count of <paramref name="key"/> (it succeeded or gave up).</summary>
    public void Forget(TKey key)
    {
        lock (_gate)
        {
            _failures.Remove(key);
        }
    }

    public int NumRequeues(TKey key)
    {
        lock (_gate)
        {
            return _failures.GetValueOrDefault(key);
        }
    }

    /// <summary>
    /// Waits for a key and marks it in flight (call <see cref="Done"/> when finished). Returns false once the queue is
    /// shut down and empty.
    /// </summary>
    public async Task<(bool Ok, TKey Key)> GetAsync(CancellationToken ct = default)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_queue.TryDequeue(out var key))
                {
                    var now = Stopwatch.GetTimestamp();
                    if (_dirty.Remove(key, out var addedAt))
                    {
                        _metrics.WorkqueueQueueDuration.WithLabels(_name).Observe(Stopwatch.GetElapsedTime(addedAt, now).TotalSeconds);
                    }
                    _processing[key] = now;
                    _metrics.WorkqueueDepth.WithLabels(_name).Set(_queue.Count);
                    return (true, key);
                }
                if (_shuttingDown)
                {
                    return (false, default!);
                }
                changed = _changed.Task;
            }
            await changed.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Ends the work on <paramref name="key"/>; if it was added meanwhile it is queued again now.</summary>
    public void Done(TKey key)
    {
        lock (_gate)
        {
            if (!_processing.Remove(key, out var startedAt))
            {
                return;
            }
            _metrics.WorkqueueWorkDuration.WithLabels(_name).Observe(Stopwatch.GetElapsedTime(startedAt).TotalSeconds);
            if (_dirty.ContainsKey(key))
            {
                _queue.Enqueue(key);
                _metrics.WorkqueueDepth.WithLabels(_name).Set(_queue.Count);
            }
            Signal();
        }
    }

    public void ShutDown()
    {
        lock (_gate)
        {
            if (_shuttingDown)
            {
                return;
            }
            _shuttingDown = true;
            _waiting.Clear();
            Signal();
        }
        _stopTimers.Cancel();
    }

    /// <summary>Shuts down and waits until every key handed out has been marked <see cref="Done"/>.</summary>
    public async Task ShutDownWithDrainAsync(CancellationToken ct = default)
    {
        ShutDown();
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_processing.Count == 0)
                {
                    return;
                }
                changed = _changed.Task;
            }
            await changed.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        ShutDown();
        _stopTimers.Dispose();
    }

    private void AddLocked(TKey key)
    {
        if (_shuttingDown || _dirty.ContainsKey(key))
        {
            return;
        }
        _dirty[key] = Stopwatch.GetTimestamp();
        _metrics.WorkqueueAdds.WithLabels(_name).Inc();
        if (_processing.ContainsKey(key))
        {
            // Queued again by Done, never handed to a second worker while the first still has it.
            return;
        }
        _queue.Enqueue(key);
        _metrics.WorkqueueDepth.WithLabels(_name).Set(_queue.Count);
        Signal();
    }

    private async Task FireAfterAsync(TKey key, long readyAt, TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _time, _stopTimers.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        lock (_gate)
        {
            // A later AddAfter with an earlier time replaced this one; that one's timer does the add.
            if (!_waiting.TryGetValue(key, out var pending) || pending != readyAt)
            {
                return;
            }
            _waiting.Remove(key);
            AddLocked(key);
        }
    }

    /// <summary>Caller holds <see cref="_gate"/>. Wakes every waiter; each re-checks under the lock.</summary>
    private void Signal()
    {
        var previous = _changed;
        _changed = NewSignal();
        previous.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
