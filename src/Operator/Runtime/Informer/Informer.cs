using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vmk.Operator.Runtime.Informer;

/// <summary>
/// A list+watch cache of one resource (client-go's reflector + indexer, kept small). Lists once, then watches from
/// the list's resourceVersion; every event and bookmark advances the resourceVersion it resumes from, so a dropped
/// or timed-out watch resumes without a gap and without a relist. Only 410 Gone (the server no longer has the
/// changes since that version) makes it list again; the relist is diffed against the cache into adds, updates and
/// deletes. Failures back off exponentially with jitter. Handlers run on the informer's loop, in event order.
/// </summary>
public sealed class Informer<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    // A watch that ends sooner than this without delivering anything counts as a failure (backs off), so a server
    // that closes every watch at once is not hammered in a tight loop.
    private static readonly TimeSpan ShortestHealthyWatch = TimeSpan.FromSeconds(1);

    private readonly IResourceApi<T> _api;
    private readonly InformerOptions _options;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string _resourceVersion = "";
    private int _lists;
    private int _watches;
    private int _running;

    public Informer(IResourceApi<T> api, InformerOptions? options = null, ILogger? logger = null)
    {
        _api = api;
        _options = options ?? new InformerOptions();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>An object appeared (first list, a relist, or an ADDED event).</summary>
    public event Action<T>? Added;

    /// <summary>An object changed: (previous cached state, new state). Not raised when the resourceVersion is unchanged.</summary>
    public event Action<T, T>? Updated;

    /// <summary>An object is gone; the argument is its last known state.</summary>
    public event Action<T>? Deleted;

    public ObjectCache<T> Cache { get; } = new();

    /// <summary>True once the first list is in the cache (and its Added handlers ran).</summary>
    public bool HasSynced => _synced.Task.IsCompleted;

    /// <summary>The resourceVersion the next watch resumes from (the last event's or bookmark's).</summary>
    public string LastResourceVersion => Volatile.Read(ref _resourceVersion);

    /// <summary>How many times the informer listed (1 + relists after 410 Gone).</summary>
    public int ListCount => Volatile.Read(ref _lists);

    /// <summary>How many watch requests it started.</summary>
    public int WatchCount => Volatile.Read(ref _watches);

    public T? Get(string? @namespace, string name) => Cache.Get(@namespace, name);

    public IReadOnlyList<T> List() => Cache.List();

    public Task WaitForSyncAsync(CancellationToken ct) => _synced.Task.WaitAsync(ct);

    /// <summary>Lists and watches until <paramref name="ct"/> is cancelled. One run per instance.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            throw new InvalidOperationException($"informer for {_api.Resource} is already running; create one informer per run");
        }
        var backoff = new Backoff(_options.MinBackoff, _options.MaxBackoff);
        var needList = true;
        while (!ct.IsCancellationRequested)
        {
            TimeSpan? wait = null;
            try
            {
                if (needList)
                {
                    await ListAsync(ct).ConfigureAwait(false);
                    needList = false;
                }
                var outcome = await WatchOnceAsync(ct).ConfigureAwait(false);
                switch (outcome)
                {
                    case WatchOutcome.Gone:
                        _logger.LogInformation("Watch of {Resource} from resourceVersion {ResourceVersion} is too old (410 Gone); relisting", _api.Resource, LastResourceVersion);
                        needList = true;
                        break;
                    case WatchOutcome.Healthy:
                        backoff.Reset();
                        break;
                    default:
                        wait = backoff.Next();
                        break;
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Gone)
            {
                _logger.LogInformation("Watch of {Resource} answered 410 Gone; relisting", _api.Resource);
                needList = true;
            }
            catch (Exception e)
            {
                wait = backoff.Next();
                _logger.LogWarning(e, "{Operation} of {Resource} failed; retrying in {Delay} from resourceVersion {ResourceVersion}",
                    needList ? "List" : "Watch", _api.Resource, wait, needList ? "(relist)" : LastResourceVersion);
            }
            if (wait is { } delay)
            {
                try
                {
                    await Task.Delay(delay, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task ListAsync(CancellationToken ct)
    {
        var list = await _api.ListAsync(ct).ConfigureAwait(false);
        Interlocked.Increment(ref _lists);
        Replace(list.Items, list.Metadata?.ResourceVersion ?? "");
        _logger.LogDebug("Listed {Count} {Resource} at resourceVersion {ResourceVersion}", list.Items.Count, _api.Resource, LastResourceVersion);
        _synced.TrySetResult();
    }

    /// <summary>Makes the cache equal to a fresh list, raising the events that turn the old cache into it.</summary>
    private void Replace(IList<T> items, string resourceVersion)
    {
        var seen = new HashSet<ObjectKey>();
        foreach (var item in items)
        {
            var key = ObjectKey.Of(item);
            seen.Add(key);
            var previous = Cache.Set(key, item);
            if (previous is null)
            {
                Raise(Added, item);
            }
            else if (previous.Metadata.ResourceVersion != item.Metadata.ResourceVersion)
            {
                RaiseUpdated(previous, item);
            }
        }
        foreach (var key in Cache.Keys())
        {
            if (!seen.Contains(key) && Cache.Remove(key) is { } gone)
            {
                Raise(Deleted, gone);
            }
        }
        Volatile.Write(ref _resourceVersion, resourceVersion);
    }

    private async Task<WatchOutcome> WatchOnceAsync(CancellationToken ct)
    {
        var gone = false;
        var failed = false;
        var events = 0;
        var started = DateTime.UtcNow;
        void OnError(Exception e)
        {
            if (e is KubernetesException { Status.Code: (int)HttpStatusCode.Gone })
            {
                gone = true;
                return;
            }
            failed = true;
            _logger.LogWarning(e, "Watch of {Resource} reported an error", _api.Resource);
        }

        // A random timeout in [t, 2t): watches of many informers then do not all restart at once.
        var timeout = _options.WatchTimeout * (1 + Random.Shared.NextDouble());
        Interlocked.Increment(ref _watches);
        await foreach (var (type, obj) in _api.WatchAsync(LastResourceVersion, timeout, OnError, ct).ConfigureAwait(false))
        {
            events++;
            Apply(type, obj);
        }
        if (gone)
        {
            return WatchOutcome.Gone;
        }
        return failed || (events == 0 && DateTime.UtcNow - started < ShortestHealthyWatch) ? WatchOutcome.Failed : WatchOutcome.Healthy;
    }

    private void Apply(WatchEventType type, T obj)
    {
        if (obj?.Metadata is null)
        {
            return;
        }
        switch (type)
        {
            case WatchEventType.Added:
            case WatchEventType.Modified:
                {
                    var previous = Cache.Set(ObjectKey.Of(obj), obj);
                    if (previous is null)
                    {
                        Raise(Added, obj);
                    }
                    else if (previous.Metadata.ResourceVersion != obj.Metadata.ResourceVersion)
                    {
                        RaiseUpdated(previous, obj);
                    }
                    break;
                }
            case WatchEventType.Deleted:
                Cache.Remove(ObjectKey.Of(obj));
                Raise(Deleted, obj);
                break;
            case WatchEventType.Bookmark:
                break;
            default:
                return;
        }
        if (!string.IsNullOrEmpty(obj.Metadata.ResourceVersion))
        {
            Volatile.Write(ref _resourceVersion, obj.Metadata.ResourceVersion);
        }
    }

    private void Raise(Action<T>? handler, T obj)
    {
        try
        {
            handler?.Invoke(obj);
        }
        catch (Exception e)
        {
            // A faulty handler must not stop the cache from following the server.
            _logger.LogError(e, "Event handler for {Resource} {Key} failed", _api.Resource, ObjectKey.Of(obj));
        }
    }

    private void RaiseUpdated(T previous, T current)
    {
        try
        {
            Updated?.Invoke(previous, current);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Update handler for {Resource} {Key} failed", _api.Resource, ObjectKey.Of(current));
        }
    }

    private enum WatchOutcome
    {
        Healthy,
        Failed,
        Gone,
    }
}
