using k8s;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Operator.Runtime.Metrics;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Runtime.LeaderElection;

/// <summary>
/// Runs the registered controllers only while this process holds the Lease (KubernetesClient's
/// <see cref="LeaderElector"/> over a <see cref="LeaseLock"/>). Losing the lease cancels the controllers and waits
/// for their reconciles in flight to end, then campaigns again; winning it back starts them with fresh caches.
/// </summary>
public sealed class ControllerHost : IAsyncDisposable
{
    private readonly IKubernetes _client;
    private readonly LeaderElectionOptions _options;
    private readonly IReadOnlyList<IController> _controllers;
    private readonly RuntimeMetrics _metrics;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _run;
    private volatile bool _leading;
    private int _disposed;

    public ControllerHost(IKubernetes client, LeaderElectionOptions options, IEnumerable<IController> controllers,
        RuntimeMetrics? metrics = null, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _client = client;
        _options = options;
        _controllers = [.. controllers];
        _metrics = metrics ?? RuntimeMetrics.Default;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Vmk.Operator.ControllerHost");
        _metrics.LeaderStatus.WithLabels(_options.LeaseName).Set(0);
    }

    public string Identity => _options.Identity;

    public bool IsLeading => _leading;

    public IReadOnlyList<IController> Controllers => _controllers;

    /// <summary>Raised with true when this host starts leading (controllers starting) and false when it stops.</summary>
    public event Action<bool>? LeadershipChanged;

    public void Start()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_run is not null)
        {
            throw new InvalidOperationException("the controller host is already started");
        }
        _run = Task.Run(() => CampaignAsync(_stop.Token));
    }

    /// <summary>Runs until <paramref name="ct"/> is cancelled (the process's main loop).</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        Start();
        try
        {
            await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Shutdown requested.
        }
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            await _run.ConfigureAwait(false);
        }
        _stop.Dispose();
    }

    private async Task CampaignAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            using var term = CancellationTokenSource.CreateLinkedTokenSource(ct);
            Task? controllers = null;
            var leaseLock = new LeaseLock(_client, _options.LeaseNamespace, _options.LeaseName, _options.Identity);
            using var elector = new LeaderElector(new LeaderElectionConfig(leaseLock)
            {
                LeaseDuration = _options.LeaseDuration,
                RenewDeadline = _options.RenewDeadline,
                RetryPeriod = _options.RetryPeriod,
            });
            elector.OnStartedLeading += () =>
            {
                _leading = true;
                _metrics.LeaderStatus.WithLabels(_options.LeaseName).Set(1);
                _logger.LogInformation("{Identity} leads {Namespace}/{Lease}; starting {Count} controllers", _options.Identity, _options.LeaseNamespace, _options.LeaseName, _controllers.Count);
                Volatile.Write(ref controllers, Task.Run(() => RunControllersAsync(term.Token), CancellationToken.None));
                Notify(true);
            };
            elector.OnNewLeader += leader => _logger.LogInformation("Leader of {Namespace}/{Lease} is now {Leader}", _options.LeaseNamespace, _options.LeaseName, leader);
            try
            {
                await elector.RunUntilLeadershipLostAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Shutting down.
            }
            catch (Exception e)
            {
                _logger.LogError(e, "Leader election for {Namespace}/{Lease} failed", _options.LeaseNamespace, _options.LeaseName);
            }

            var wasLeading = _leading;
            await term.CancelAsync().ConfigureAwait(false);
            if (Volatile.Read(ref controllers) is { } running)
            {
                await running.ConfigureAwait(false);
            }
            if (wasLeading)
            {
                _leading = false;
                _metrics.LeaderStatus.WithLabels(_options.LeaseName).Set(0);
                Notify(false);
                _logger.LogWarning("{Identity} no longer leads {Namespace}/{Lease}; controllers stopped", _options.Identity, _options.LeaseNamespace, _options.LeaseName);
            }
            if (!ct.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(_options.RetryPeriod, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task RunControllersAsync(CancellationToken ct)
    {
        var runs = _controllers.Select(c => RunOneAsync(c, ct)).ToList();
        await Task.WhenAll(runs).ConfigureAwait(false);
    }

    private async Task RunOneAsync(IController controller, CancellationToken ct)
    {
        // A controller that crashes is restarted while we lead: one broken controller must not stop the others.
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await controller.RunAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                _logger.LogError(e, "Controller {Controller} stopped with an error; restarting it", controller.Name);
                try
                {
                    await Task.Delay(_options.RetryPeriod, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Notify(bool leading)
    {
        try
        {
            LeadershipChanged?.Invoke(leading);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "LeadershipChanged handler failed");
        }
    }
}
