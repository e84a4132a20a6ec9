using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Vmk.ApiServer.Http;

namespace Vmk.ApiServer.Storage;

/// <summary>
/// All objects in memory, written through to SQLite, with one global resourceVersion sequence (as etcd's revision)
/// and a bounded log of recent changes from which watches resume.
/// <para>
/// Callers take <see cref="Gate"/> around every read-modify-write, so a change and its resourceVersion are decided
/// atomically and in order. Changes then reach disk by group commit: a flusher writes everything pending in one
/// transaction (one fsync), and only after that publishes the watch events and releases the requests waiting in
/// <see cref="WaitDurableAsync"/>. The HTTP layer waits there before answering any request, reads included, so a
/// client never sees a change that a crash could still take back.
/// </para>
/// </summary>
public sealed class ObjectStore : IDisposable
{
    private readonly Dictionary<string, SortedDictionary<string, StoredObject>> _objects = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StoredObject> _byUid = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<WatchSubscription>> _subscriptions = new(StringComparer.Ordinal);
    private readonly WatchEvent?[] _log;
    private readonly SqlitePersistence _persistence;
    private readonly int _watchQueueCapacity;
    private readonly Channel<bool> _flushSignal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly List<(long Rv, TaskCompletionSource Done)> _waiters = [];
    private readonly Task _flusher;
    private List<PendingWrite> _pending = [];
    private Exception? _storageFailure;
    private int _logStart;
    private int _logCount;
    private long _rv;
    private long _durableRv;
    private long _compactedRv;
    private int _disposed;
    private long _batches;
    private long _batchedWrites;

    /// <summary>Group-commit statistics: transactions written and the changes they carried.</summary>
    public (long Batches, long Writes) CommitStatistics => (Interlocked.Read(ref _batches), Interlocked.Read(ref _batchedWrites));

    public ObjectStore(string databasePath, int watchLogCapacity, int watchQueueCapacity, bool fullSync)
    {
        _persistence = new SqlitePersistence(databasePath, fullSync);
        _log = new WatchEvent?[Math.Max(16, watchLogCapacity)];
        _watchQueueCapacity = watchQueueCapacity;
        _rv = _persistence.LoadResourceVersion();
        foreach (var (resource, ns, name, rv, data) in _persistence.LoadAll())
        {
            var obj = JsonNode.Parse(data) as JsonObject ?? throw new InvalidDataException($"stored object {resource} {ns}/{name} is not a JSON object");
            var stored = new StoredObject(resource, ns, name, rv, obj, data);
            Map(resource)[stored.Key] = stored;
            if (stored.Uid.Length > 0)
            {
                _byUid[stored.Uid] = stored;
            }
        }
        _durableRv = _rv;
        // Events before a restart are gone: a watch from an older version must relist (410), as after etcd compaction.
        _compactedRv = _rv;
        _flusher = Task.Run(FlushLoopAsync);
    }

    public Lock Gate { get; } = new();

    /// <summary>The last resourceVersion handed out (its change may still be on its way to disk).</summary>
    public long CurrentResourceVersion
    {
        get
        {
            lock (Gate)
            {
                return _rv;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (Gate)
            {
                return _objects.Values.Sum(m => m.Count);
            }
        }
    }

    private SortedDictionary<string, StoredObject> Map(string resource)
    {
        if (!_objects.TryGetValue(resource, out var map))
        {
            map = new SortedDictionary<string, StoredObject>(StringComparer.Ordinal);
            _objects[resource] = map;
        }
        return map;
    }

    public StoredObject? Get(string resource, string ns, string name)
    {
        lock (Gate)
        {
            return _objects.TryGetValue(resource, out var map) && map.TryGetValue(StoredObject.StoreKey(ns, name), out var o) ? o : null;
        }
    }

    public StoredObject? GetByUid(string uid)
    {
        lock (Gate)
        {
            return _byUid.GetValueOrDefault(uid);
        }
    }

    /// <summary>Snapshot of a resource's objects in key order, from <paramref name="afterKey"/> (exclusive).</summary>
    public (List<StoredObject> Items, long ResourceVersion) List(string resource, string? ns, string? afterKey = null)
    {
        lock (Gate)
        {
            var items = new List<StoredObject>();
            if (_objects.TryGetValue(resource, out var map))
            {
                foreach (var (key, value) in map)
                {
                    if (afterKey is not null && string.CompareOrdinal(key, afterKey) <= 0)
                    {
                        continue;
                    }
                    if (ns is null || value.Namespace == ns)
                    {
                        items.Add(value);
                    }
                }
            }
            return (items, _rv);
        }
    }

    /// <summary>Every object, for the garbage collector's scans.</summary>
    public List<StoredObject> All()
    {
        lock (Gate)
        {
            return _objects.Values.SelectMany(m => m.Values).ToList();
        }
    }

    /// <summary>Commits a create or update. Caller holds <see cref="Gate"/>.</summary>
    public StoredObject Put(string resource, JsonObject obj, StoredObject? previous)
    {
        ThrowIfFailed();
        var meta = obj["metadata"] as JsonObject ?? throw new InvalidOperationException("object without metadata");
        var ns = Schema.JsonKinds.GetString(meta["namespace"]) ?? "";
        var name = Schema.JsonKinds.GetString(meta["name"]) ?? throw new InvalidOperationException("object without name");
        var rv = _rv + 1;
        meta["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture);
        var json = JsonSerializer.SerializeToUtf8Bytes(obj, JsonWire.Options);
        _rv = rv;
        var stored = new StoredObject(resource, ns, name, rv, obj, json);
        Map(resource)[stored.Key] = stored;
        if (previous is not null && previous.Uid != stored.Uid)
        {
            _byUid.Remove(previous.Uid);
        }
        _byUid[stored.Uid] = stored;
        Enqueue(new PendingWrite(resource, ns, name, rv, json, new WatchEvent(previous is null ? WatchEvent.Added : WatchEvent.Modified, stored, previous, rv)));
        return stored;
    }

    /// <summary>Removes an object; watchers see DELETED with <paramref name="finalState"/> at the new version.
    /// Caller holds <see cref="Gate"/>.</summary>
    public StoredObject Remove(StoredObject previous, JsonObject finalState)
    {
        ThrowIfFailed();
        var rv = _rv + 1;
        if (finalState["metadata"] is JsonObject meta)
        {
            meta["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture);
        }
        _rv = rv;
        Map(previous.Resource).Remove(previous.Key);
        _byUid.Remove(previous.Uid);
        var json = JsonSerializer.SerializeToUtf8Bytes(finalState, JsonWire.Options);
        var gone = new StoredObject(previous.Resource, previous.Namespace, previous.Name, rv, finalState, json);
        Enqueue(new PendingWrite(previous.Resource, previous.Namespace, previous.Name, rv, null, new WatchEvent(WatchEvent.Deleted, gone, previous, rv)));
        return gone;
    }

    private void Enqueue(PendingWrite write)
    {
        _pending.Add(write);
        _flushSignal.Writer.TryWrite(true);
    }

    private void ThrowIfFailed()
    {
        if (_storageFailure is not null)
        {
            throw new ApiException(503, "ServiceUnavailable",
                $"the server's storage failed ({_storageFailure.Message}); memory may be ahead of disk, so it serves nothing until restarted");
        }
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new ApiException(503, "ServiceUnavailable", "the server is shutting down");
        }
    }

    /// <summary>Completes when every change up to <paramref name="rv"/> is on disk and published to watchers.</summary>
    public Task WaitDurableAsync(long rv)
    {
        lock (Gate)
        {
            ThrowIfFailed();
            if (rv <= _durableRv)
            {
                return Task.CompletedTask;
            }
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((rv, done));
            return done.Task;
        }
    }

    /// <summary>Waits until everything handed out so far is durable.</summary>
    public Task WaitDurableAsync() => WaitDurableAsync(CurrentResourceVersion);

    private async Task FlushLoopAsync()
    {
        while (await _flushSignal.Reader.WaitToReadAsync())
        {
            _flushSignal.Reader.TryRead(out _);
            FlushPending();
        }
        // Shutting down: whatever is still pending goes to disk too.
        FlushPending();
    }

    private void FlushPending()
    {
        {
            List<PendingWrite> batch;
            lock (Gate)
            {
                batch = _pending;
                _pending = [];
            }
            if (batch.Count == 0)
            {
                return;
            }
            try
            {
                _persistence.WriteBatch(batch);
                Interlocked.Increment(ref _batches);
                Interlocked.Add(ref _batchedWrites, batch.Count);
            }
            catch (Exception e)
            {
                lock (Gate)
                {
                    _storageFailure = e;
                    foreach (var (_, done) in _waiters)
                    {
                        done.TrySetException(new ApiException(503, "ServiceUnavailable", $"the server's storage failed: {e.Message}"));
                    }
                    _waiters.Clear();
                }
                return;
            }
            lock (Gate)
            {
                foreach (var w in batch)
                {
                    Publish(w.Event);
                }
                _durableRv = batch[^1].ResourceVersion;
                for (var i = _waiters.Count - 1; i >= 0; i--)
                {
                    if (_waiters[i].Rv <= _durableRv)
                    {
                        _waiters[i].Done.TrySetResult();
                        _waiters.RemoveAt(i);
                    }
                }
            }
        }
    }

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    private void Publish(WatchEvent e)
    {
        if (_logCount == _log.Length)
        {
            var evicted = _log[_logStart]!;
            _compactedRv = evicted.ResourceVersion;
            _log[_logStart] = null;
            _logStart = (_logStart + 1) % _log.Length;
            _logCount--;
        }
        _log[(_logStart + _logCount) % _log.Length] = e;
        _logCount++;

        if (_subscriptions.TryGetValue(e.Object!.Resource, out var subs))
        {
            foreach (var s in subs)
            {
                s.Offer(e);
            }
        }
    }

    /// <summary>
    /// Starts a watch. With <paramref name="fromRv"/>, replays every retained change after it (410 Gone if the log
    /// no longer reaches back that far); without, the caller sends <c>Initial</c> (the state at
    /// <c>ResourceVersion</c>, once <see cref="WaitDurableAsync(long)"/> says it is durable) and the subscription
    /// skips the changes that state already contains.
    /// </summary>
    public (WatchSubscription Subscription, List<StoredObject>? Initial, long ResourceVersion) Subscribe(string resource, string? ns, long? fromRv)
    {
        lock (Gate)
        {
            ThrowIfFailed();
            var sub = new WatchSubscription(resource, ns, _watchQueueCapacity, Unsubscribe);
            List<StoredObject>? initial = null;
            if (fromRv is { } from)
            {
                if (from < _compactedRv)
                {
                    sub.Dispose();
                    throw ApiException.Gone($"too old resource version: {from} ({_compactedRv})");
                }
                for (var i = 0; i < _logCount; i++)
                {
                    var e = _log[(_logStart + i) % _log.Length]!;
                    if (e.ResourceVersion > from && e.Object!.Resource == resource)
                    {
                        sub.Offer(e);
                    }
                }
            }
            else
            {
                initial = _objects.TryGetValue(resource, out var map)
                    ? map.Values.Where(o => ns is null || o.Namespace == ns).ToList()
                    : [];
                sub.SkipThrough = _rv;
            }
            if (!_subscriptions.TryGetValue(resource, out var list))
            {
                list = [];
                _subscriptions[resource] = list;
            }
            list.Add(sub);
            return (sub, initial, _rv);
        }
    }

    /// <summary>Queues a bookmark behind every change already queued for the watcher, at the last durable version
    /// (every change up to it has been delivered or is queued).</summary>
    public void Bookmark(WatchSubscription sub)
    {
        lock (Gate)
        {
            sub.OfferBookmark(Math.Max(_durableRv, sub.SkipThrough));
        }
    }

    private void Unsubscribe(WatchSubscription sub)
    {
        lock (Gate)
        {
            if (_subscriptions.TryGetValue(sub.Resource, out var list))
            {
                list.Remove(sub);
            }
        }
    }

    public int WatcherCount
    {
        get
        {
            lock (Gate)
            {
                return _subscriptions.Values.Sum(l => l.Count);
            }
        }
    }

    /// <summary>Ends every watch stream (at shutdown), so clients re-watch elsewhere or later.</summary>
    public void CloseWatches()
    {
        lock (Gate)
        {
            foreach (var sub in _subscriptions.Values.SelectMany(l => l).ToList())
            {
                sub.Channel.Writer.TryComplete();
            }
        }
    }

    /// <summary>Flushes what is pending, then closes the database.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        CloseWatches();
        _flushSignal.Writer.TryComplete();
        _flusher.GetAwaiter().GetResult();
        _persistence.Dispose();
    }
}
