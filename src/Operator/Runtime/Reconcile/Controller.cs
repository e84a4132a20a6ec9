using System.Diagnostics;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Metrics;
using Vmk.Operator.Runtime.Queue;

namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// Wires an <see cref="Informer{T}"/>, a <see cref="WorkQueue{TKey}"/> of <see cref="ObjectKey"/>s and an
/// <see cref="IReconciler{T}"/>: informer events queue keys (updates only when spec or relevant metadata changed),
/// N workers take keys and reconcile the cached object, and the result decides what happens to the key.
/// Exceptions are logged and retried with backoff; they never stop the controller. Each run builds a fresh
/// cache and queue, so the host can stop it on losing leadership and start it again on winning it back.
/// </summary>
public sealed class Controller<T> : IController
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    private readonly IResourceApi<T> _api;
    private readonly IReconciler<T> _reconciler;
    private readonly ControllerOptions _options;
    private readonly RuntimeMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private Informer<T>? _informer;
    private WorkQueue<ObjectKey>? _queue;

    public Controller(string name, IResourceApi<T> api, IReconciler<T> reconciler, ControllerOptions? options = null,
        RuntimeMetrics? metrics = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        _api = api;
        _reconciler = reconciler;
        _options = options ?? new ControllerOptions();
        if (_options.Workers < 1)
        {
            throw new ArgumentException($"controller '{name}': Workers must be at least 1 (was {_options.Workers})", nameof(options));
        }
        _metrics = metrics ?? RuntimeMetrics.Default;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger("Vmk.Operator.Controller." + name);
    }

    public string Name { get; }

    /// <summary>The cache of the current run (null when not running): what a reconciler reads other objects from.</summary>
    public ObjectCache<T>? Cache => Volatile.Read(ref _informer)?.Cache;

    /// <summary>The current run's informer (null when not running).</summary>
    public Informer<T>? Informer => Volatile.Read(ref _informer);

    /// <summary>
    /// Raised for every add or update the informer sees, status-only ones included (previous state, or null for an
    /// add), before the controller's own filter: how other controllers follow objects they do not reconcile.
    /// Handlers run on the informer's loop and must be quick.
    /// </summary>
    public event Action<T?, T>? ObjectChanged;

    /// <summary>Raised when the informer sees an object go (its last known state).</summary>
    public event Action<T>? ObjectDeleted;

    /// <summary>Keys waiting for a worker in the current run (0 when not running).</summary>
    public int QueueLength => Volatile.Read(ref _queue)?.Count ?? 0;

    /// <summary>Keys being reconciled right now in the current run (0 when not running).</summary>
    public int InFlight => Volatile.Read(ref _queue)?.InFlight ?? 0;

    /// <summary>Queues a key from outside the informer (another controller, a daemon's watch stream); ignored while not running.</summary>
    public void Enqueue(ObjectKey key) => Volatile.Read(ref _queue)?.Add(key);

    /// <summary>Queues every cached key matching <paramref name="filter"/> (all when null); ignored while not running.</summary>
    public void EnqueueAll(Func<T, bool>? filter = null)
    {
        if (Volatile.Read(ref _informer) is { } informer && Volatile.Read(ref _queue) is { } queue)
        {
            foreach (var obj in informer.Cache.List())
            {
                if (filter is null || filter(obj))
                {
                    queue.Add(ObjectKey.Of(obj));
                }
            }
        }
    }

    /// <summary>Raised after each reconcile with its key and outcome (the exception for failures), for tests and tracing.</summary>
    public event Action<ObjectKey, ReconcileResult?, Exception?>? Reconciled;

    public async Task RunAsync(CancellationToken ct)
    {
        var informer = new Informer<T>(_api, _options.Informer, _loggerFactory.CreateLogger("Vmk.Operator.Informer." + _api.Resource));
        using var queue = new WorkQueue<ObjectKey>(Name, _options.RateLimiter, _metrics);
        informer.Added += o =>
        {
            queue.Add(ObjectKey.Of(o));
            RaiseChanged(null, o);
        };
        informer.Updated += (previous, current) =>
        {
            RaiseChanged(previous, current);
            if (Generations.SpecOrMetadataChanged(previous, current))
            {
                queue.Add(ObjectKey.Of(current));
            }
        };
        informer.Deleted += o =>
        {
            queue.Add(ObjectKey.Of(o));
            try
            {
                ObjectDeleted?.Invoke(o);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "ObjectDeleted handler of {Controller} failed", Name);
            }
        };
        Volatile.Write(ref _informer, informer);
        Volatile.Write(ref _queue, queue);

        using var stopping = ct.Register(queue.ShutDown);
        var informerRun = Task.Run(() => informer.RunAsync(ct), CancellationToken.None);
        try
        {
            try
            {
                await informer.WaitForSyncAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            _logger.LogInformation("Controller {Controller} synced {Count} objects; starting {Workers} workers", Name, informer.Cache.Count, _options.Workers);
            var workers = new List<Task>();
            for (var i = 0; i < _options.Workers; i++)
            {
                workers.Add(Task.Run(() => WorkAsync(informer, queue, ct), CancellationToken.None));
            }
            if (_options.ResyncPeriod is { } period)
            {
                workers.Add(ResyncAsync(informer, queue, period, ct));
            }
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        finally
        {
            queue.ShutDown();
            await informerRun.ConfigureAwait(false);
            Volatile.Write(ref _informer, null);
            Volatile.Write(ref _queue, null);
            _logger.LogInformation("Controller {Controller} stopped", Name);
        }
    }

    private async Task WorkAsync(Informer<T> informer, WorkQueue<ObjectKey> queue, CancellationToken ct)
    {
        while (true)
        {
            var (ok, key) = await queue.GetAsync(CancellationToken.None).ConfigureAwait(false);
            if (!ok)
            {
                return;
            }
            try
            {
                // Stopping (leadership lost): leave the rest to whoever leads next rather than act without the lease.
                if (!ct.IsCancellationRequested)
                {
                    await ReconcileOneAsync(informer, queue, key, ct).ConfigureAwait(false);
                }
            }
            finally
            {
                queue.Done(key);
            }
        }
    }

    private async Task ReconcileOneAsync(Informer<T> informer, WorkQueue<ObjectKey> queue, ObjectKey key, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        ReconcileResult? result = null;
        Exception? failure = null;
        try
        {
            var obj = informer.Cache.Get(key);
            result = obj is null
                ? await _reconciler.ReconcileDeletedAsync(key, ct).ConfigureAwait(false)
                : await _reconciler.ReconcileAsync(obj, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            _metrics.ReconcileTime.WithLabels(Name).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        if (failure is not null)
        {
            _metrics.ReconcileTotal.WithLabels(Name, "error").Inc();
            _metrics.ReconcileErrors.WithLabels(Name).Inc();
            queue.AddRateLimited(key);
            _logger.LogError(failure, "Reconcile of {Key} by {Controller} failed (attempt {Attempt}); retrying with backoff", key, Name, queue.NumRequeues(key));
        }
        else
        {
            queue.Forget(key);
            switch (result!.Outcome)
            {
                case ReconcileOutcome.RequeueAfter:
                    _metrics.ReconcileTotal.WithLabels(Name, "requeue_after").Inc();
                    queue.AddAfter(key, result.Delay);
                    break;
                case ReconcileOutcome.Terminal:
                    _metrics.ReconcileTotal.WithLabels(Name, "terminal").Inc();
                    _logger.LogWarning("Reconcile of {Key} by {Controller} stopped: {Reason}; it runs again when the object changes", key, Name, result.Reason);
                    break;
                default:
                    _metrics.ReconcileTotal.WithLabels(Name, "success").Inc();
                    break;
            }
        }
        try
        {
            Reconciled?.Invoke(key, result, failure);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Reconciled handler of {Controller} failed", Name);
        }
    }

    private void RaiseChanged(T? previous, T current)
    {
        try
        {
            ObjectChanged?.Invoke(previous, current);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "ObjectChanged handler of {Controller} failed", Name);
        }
    }

    private static async Task ResyncAsync(Informer<T> informer, WorkQueue<ObjectKey> queue, TimeSpan period, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                foreach (var key in informer.Cache.Keys())
                {
                    queue.Add(key);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }
}
