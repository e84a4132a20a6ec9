using Prometheus;

namespace Vmk.Operator.Controllers.Migrations;

/// <summary>The migration series of docs/packaging.md, fed by the VirtualMachineMigration controller as migrations end.</summary>
public sealed class MigrationMetrics
{
    public MigrationMetrics(CollectorRegistry registry)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(registry);
        Total = factory.CreateCounter("vmkernel_migration_total", "Finished VirtualMachineMigrations by result.", new CounterConfiguration { LabelNames = ["result"] });
        InProgress = factory.CreateGauge("vmkernel_migrations_in_progress", "Migrations running (admitted, not finished).");
        Downtime = factory.CreateHistogram("vmkernel_migration_downtime_seconds", "Guest pause at switch-over.",
            new HistogramConfiguration { Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        Duration = factory.CreateHistogram("vmkernel_migration_duration_seconds", "Start of the transfer to completion.",
            new HistogramConfiguration { Buckets = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600] });
        TransferredBytes = factory.CreateCounter("vmkernel_migration_transferred_bytes_total", "Guest memory sent to target hosts.");
        foreach (var result in new[] { "succeeded", "failed", "cancelled" })
        {
            Total.WithLabels(result);
        }
    }

    public Counter Total { get; }

    public Gauge InProgress { get; }

    public Histogram Downtime { get; }

    public Histogram Duration { get; }

    public Counter TransferredBytes { get; }
}
