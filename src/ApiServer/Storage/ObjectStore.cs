using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;

namespace Vmk.ApiServer.Storage;

/// <summary>
/// All objects in memory, written through to SQLite, with one global resourceVersion sequence (as etcd's revision)
/// and a bounded log of recent changes from which watches resume. Callers take <see cref="Gate"/> around every
/// read-modify-write so that a commit, its resourceVersion and its watch event happen atomically and in order.
/// </summary>
public sealed class ObjectStore : IDisposable
{
    private readonly Dictionary<string, SortedDictionary<string, StoredObject>> _objects = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StoredObject> _byUid = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<WatchSubscription>> _subscriptions = new(StringComparer.Ordinal);
    private readonly WatchEvent?[] _log;
    private readonly SqlitePersistence _persistence;
    private readonly int _watchQueueCapacity;
    private int _logStart;
    private int _logCount;
    private long _rv;
    private long _compactedRv;

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
        // Events before a restart are gone: a watch from an older version must relist (410), as after etcd compaction.
        _compactedRv = _rv;
    }

    public Lock Gate { get; } = new();

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

    public IReadOnlyList<string> Resources()
    {
        lock (Gate)
        {
            return _objects.Keys.ToList();
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
        var meta = obj["metadata"] as JsonObject ?? throw new InvalidOperationException("object without metadata");
        var ns = meta["namespace"]?.GetValue<string>() ?? "";
        var name = meta["name"]?.GetValue<string>() ?? throw new InvalidOperationException("object without name");
        var rv = _rv + 1;
        meta["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture);
        var json = JsonSerializer.SerializeToUtf8Bytes(obj, Http.JsonWire.Options);
        _persistence.Upsert(resource, ns, name, rv, json);
        _rv = rv;
        var stored = new StoredObject(resource, ns, name, rv, obj, json);
        Map(resource)[stored.Key] = stored;
        if (previous is not null && previous.Uid != stored.Uid)
        {
            _byUid.Remove(previous.Uid);
        }
        _byUid[stored.Uid] = stored;
        Publish(new WatchEvent(previous is null ? WatchEvent.Added : WatchEvent.Modified, stored, previous, rv));
        return stored;
    }

    /// <summary>Removes an object; watchers see DELETED with <paramref name="finalState"/> at the new version.
    /// Caller holds <see cref="Gate"/>.</summary>
    public StoredObject Remove(StoredObject previous, JsonObject finalState)
    {
        var rv = _rv + 1;
        if (finalState["metadata"] is JsonObject meta)
        {
            meta["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture);
        }
        _persistence.Delete(previous.Resource, previous.Namespace, previous.Name, rv);
        _rv = rv;
        Map(previous.Resource).Remove(previous.Key);
        _byUid.Remove(previous.Uid);
        var json = JsonSerializer.SerializeToUtf8Bytes(finalState, Http.JsonWire.Options);
        var gone = new StoredObject(previous.Resource, previous.Namespace, previous.Name, rv, finalState, json);
        Publish(new WatchEvent(WatchEvent.Deleted, gone, previous, rv));
        return gone;
    }

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
    /// no longer reaches back that far); without, the caller sends the current state first (returned as
    /// <c>Initial</c>), taken atomically with the registration so no change falls between.
    /// </summary>
    public (WatchSubscription Subscription, List<StoredObject>? Initial, long ResourceVersion) Subscribe(string resource, string? ns, long? fromRv)
    {
        lock (Gate)
        {
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

    /// <summary>Queues a bookmark at the current version behind every change already queued for the watcher.</summary>
    public void Bookmark(WatchSubscription sub)
    {
        lock (Gate)
        {
            sub.OfferBookmark(_rv);
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

    public void Dispose()
    {
        CloseWatches();
        lock (Gate)
        {
            _persistence.Dispose();
        }
    }
}
