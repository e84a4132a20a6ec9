using Prometheus;
using PromMetrics = Prometheus.Metrics;

namespace Vmk.Operator.Runtime.Metrics;

/// <summary>
/// The controller runtime's Prometheus metrics, named as controller-runtime and client-go's workqueue name them so
/// existing dashboards and alerts apply unchanged. One instance per registry: tests use their own registry and
/// read the counters back; the operator uses <see cref="Default"/>.
/// </summary>
public sealed class RuntimeMetrics
{
    private static readonly double[] DurationBuckets = Histogram.ExponentialBuckets(0.001, 2, 16);

    public RuntimeMetrics(CollectorRegistry registry)
    {
        Registry = registry;
        var factory = PromMetrics.WithCustomRegistry(registry);
        ReconcileTotal = factory.CreateCounter("controller_runtime_reconcile_total",
            "Total number of reconciliations per controller and result (success, error, requeue_after, terminal).",
            new CounterConfiguration { LabelNames = ["controller", "result"] });
        ReconcileErrors = factory.CreateCounter("controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller.",
            new CounterConfiguration { LabelNames = ["controller"] });
        ReconcileTime = factory.CreateHistogram("controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller.",
            new HistogramConfiguration { LabelNames = ["controller"], Buckets = DurationBuckets });
        WorkqueueDepth = factory.CreateGauge("workqueue_depth", "Current depth of the workqueue.",
            new GaugeConfiguration { LabelNames = ["name"] });
        WorkqueueAdds = factory.CreateCounter("workqueue_adds_total", "Total number of adds handled by the workqueue (duplicates of queued keys excluded).",
            new CounterConfiguration { LabelNames = ["name"] });
        WorkqueueQueueDuration = factory.CreateHistogram("workqueue_queue_duration_seconds",
            "How long a key stays in the workqueue before a worker takes it.",
            new HistogramConfiguration { LabelNames = ["name"], Buckets = DurationBuckets });
        WorkqueueWorkDuration = factory.CreateHistogram("workqueue_work_duration_seconds",
            "How long processing a key from the workqueue takes.",
            new HistogramConfiguration { LabelNames = ["name"], Buckets = DurationBuckets });
        WorkqueueRetries = factory.CreateCounter("workqueue_retries_total", "Total number of rate-limited retries handled by the workqueue.",
            new CounterConfiguration { LabelNames = ["name"] });
        LeaderStatus = factory.CreateGauge("leader_election_master_status",
            "1 while this process holds the named leader lease, 0 otherwise.",
            new GaugeConfiguration { LabelNames = ["name"] });
    }

    /// <summary>The process-wide instance on prometheus-net's default registry (what /metrics serves).</summary>
    public static RuntimeMetrics Default { get; } = new(PromMetrics.DefaultRegistry);

    public CollectorRegistry Registry { get; }

    public Counter ReconcileTotal { get; }

    public Counter ReconcileErrors { get; }

    public Histogram ReconcileTime { get; }

    public Gauge WorkqueueDepth { get; }

    public Counter WorkqueueAdds { get; }

    public Histogram WorkqueueQueueDuration { get; }

    public Histogram WorkqueueWorkDuration { get; }

    public Counter WorkqueueRetries { get; }

    public Gauge LeaderStatus { get; }
}
