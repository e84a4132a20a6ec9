using k8s;
using Microsoft.Extensions.Logging;
using Prometheus;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.LeaderElection;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>The operator's controllers running in the test process until disposed (which stops them and waits).</summary>
public sealed class InProcessOperator : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Kubernetes _client;
    private readonly DaemonConnectionPool _pool;
    private readonly Task _run;
    private int _disposed;

    public InProcessOperator(Kubernetes client, DaemonConnectionPool pool, OperatorControllers controllers, CollectorRegistry registry, ILogger logger)
    {
        _client = client;
        _pool = pool;
        Controllers = controllers;
        Registry = registry;
        _run = UnelectedHost.RunAsync(controllers.All, logger, _stop.Token);
    }

    public OperatorControllers Controllers { get; }

    public CollectorRegistry Registry { get; }

    public async Task<string> ScrapeAsync()
    {
        using var stream = new MemoryStream();
        await Registry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync();
        await _run.WaitAsync(TimeSpan.FromSeconds(60));
        _pool.Dispose();
        _client.Dispose();
        _stop.Dispose();
    }
}
