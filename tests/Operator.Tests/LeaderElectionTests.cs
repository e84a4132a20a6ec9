using System.Collections.Concurrent;
using Prometheus;
using Vmk.Operator.Runtime.LeaderElection;
using Vmk.Operator.Runtime.Metrics;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Tests;

/// <summary>Two operator replicas over one Lease on the real API server: only the leader reconciles.</summary>
public sealed class LeaderElectionTests : IClassFixture<ApiServerFixture>
{
    private readonly ApiServerFixture _server;

    public LeaderElectionTests(ApiServerFixture server)
    {
        _server = server;
    }

    /// <summary>One replica: its own client (optionally behind a flaky network), controller, metrics and reconcile log.</summary>
    private sealed class Replica : IAsyncDisposable
    {
        private readonly k8s.Kubernetes _client;

        public Replica(ApiServerFixture server, string ns, string identity, FlakyNetwork? network = null)
        {
            _client = network is null ? server.Client() : server.Client(network);
            Metrics = new RuntimeMetrics(Prometheus.Metrics.NewCustomRegistry());
            var reconciler = new DelegateReconciler((vm, _) =>
            {
                Reconciled.Enqueue(vm.Metadata.Name);
                return Task.FromResult(ReconcileResult.Done);
            });
            var controller = new Controller<TestVm>("vms", Vms.Api(_client, ns), reconciler, metrics: Metrics);
            Host = new ControllerHost(_client, new LeaderElectionOptions
            {
                LeaseNamespace = ns,
                LeaseName = "vm-operator",
                Identity = identity,
                // Short for a quick takeover, yet a renew deadline a loaded 2-core machine (QEMU tests in parallel)
                // does not miss by accident: 1 s was missed there now and then.
                LeaseDuration = TimeSpan.FromSeconds(4),
                RenewDeadline = TimeSpan.FromSeconds(3),
                RetryPeriod = TimeSpan.FromMilliseconds(200),
            }, [controller], Metrics);
            Host.LeadershipChanged += leading =>
            {
                if (leading)
                {
                    Leading.TrySetResult();
                }
            };
        }

        public ControllerHost Host { get; }

        public RuntimeMetrics Metrics { get; }

        public ConcurrentQueue<string> Reconciled { get; } = new();

        public TaskCompletionSource Leading { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public double LeaderGauge => Metrics.LeaderStatus.WithLabels("vm-operator").Value;

        public async ValueTask DisposeAsync()
        {
            await Host.DisposeAsync();
            _client.Dispose();
        }
    }

    [Fact]
    public async Task Only_the_leader_reconciles_and_the_other_takes_over_when_the_leader_is_killed()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        await Vms.CreateAsync(client, ns, "first");
        var a = new Replica(_server, ns, "replica-a");
        await using var b = new Replica(_server, ns, "replica-b");
        try
        {
            a.Host.Start();
            await Eventually.WithinAsync(a.Leading.Task);
            b.Host.Start();
            await Eventually.TrueAsync(() => a.Reconciled.Contains("first"), "the leader's initial reconcile");
            await Vms.CreateAsync(client, ns, "second");
            await Eventually.TrueAsync(() => a.Reconciled.Contains("second"), "the leader reconciling a new object");

            Assert.True(a.Host.IsLeading);
            Assert.False(b.Host.IsLeading);
            Assert.Empty(b.Reconciled);
            Assert.Equal(1, a.LeaderGauge);
            Assert.Equal(0, b.LeaderGauge);
        }
        finally
        {
            // The leader process dies (its controllers stop, it no longer renews the Lease).
            await a.DisposeAsync();
        }

        await Eventually.WithinAsync(b.Leading.Task);
        await Eventually.TrueAsync(() => b.Reconciled.Contains("first") && b.Reconciled.Contains("second"), "the new leader's initial reconciles");
        await Vms.CreateAsync(client, ns, "third");
        await Eventually.TrueAsync(() => b.Reconciled.Contains("third"), "the new leader reconciling a new object");
        Assert.DoesNotContain("third", a.Reconciled);
        Assert.Equal(1, b.LeaderGauge);
    }

    [Fact]
    public async Task A_leader_that_cannot_renew_stops_its_controllers_and_the_other_replica_takes_over()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        using var network = new FlakyNetwork();
        await using var a = new Replica(_server, ns, "replica-a", network);
        await using var b = new Replica(_server, ns, "replica-b");
        a.Host.Start();
        await Eventually.WithinAsync(a.Leading.Task);
        b.Host.Start();
        await Vms.CreateAsync(client, ns, "before");
        await Eventually.TrueAsync(() => a.Reconciled.Contains("before"), "the leader's reconcile");

        // The leader is cut off from the API server: it cannot renew, so it must step down by itself.
        // (A state, not the first step-down event: on a loaded machine the leader can miss its renew deadline
        // before the cut and lead again a moment later. IsLeading turns false only after its controllers stopped.)
        network.Partition();
        await Eventually.TrueAsync(() => !a.Host.IsLeading && a.LeaderGauge == 0, "the cut-off leader stepping down");
        await Eventually.WithinAsync(b.Leading.Task);

        network.Heal();
        await Vms.CreateAsync(client, ns, "after");
        await Eventually.TrueAsync(() => b.Reconciled.Contains("after"), "the new leader's reconcile");
        Assert.DoesNotContain("after", a.Reconciled);
        Assert.False(a.Host.IsLeading);
    }
}
