using System.Collections.Concurrent;
using Prometheus;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Metrics;
using Vmk.Operator.Runtime.Queue;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Tests;

/// <summary>Controller&lt;T&gt; against the real API server: de-duplication, backoff, requeue, finalizers, idleness.</summary>
public sealed class ControllerTests : IClassFixture<ApiServerFixture>
{
    private static readonly ExponentialBackoffRateLimiter FastBackoff = new() { BaseDelay = TimeSpan.FromMilliseconds(50), MaxJitter = TimeSpan.FromMilliseconds(10) };

    private readonly ApiServerFixture _server;
    private readonly RuntimeMetrics _metrics = new(Metrics.NewCustomRegistry());

    public ControllerTests(ApiServerFixture server)
    {
        _server = server;
    }

    private double Reconciles(string controller, string result) => _metrics.ReconcileTotal.WithLabels(controller, result).Value;

    private Controller<TestVm> NewController(string name, k8s.IKubernetes client, string ns, IReconciler<TestVm> reconciler, int workers = 4)
        => new(name, Vms.Api(client, ns), reconciler, new ControllerOptions { Workers = workers, RateLimiter = FastBackoff }, _metrics);

    [Fact]
    public async Task A_burst_of_updates_while_reconciling_is_one_more_reconcile_of_the_latest_state_never_concurrent()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        await Vms.CreateAsync(client, ns, "burst");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seen = new ConcurrentQueue<string?>();
        var inFlight = 0;
        var overlapped = false;
        var reconciler = new DelegateReconciler(async (vm, ct) =>
        {
            if (Interlocked.Increment(ref inFlight) > 1)
            {
                overlapped = true;
            }
            seen.Enqueue(vm.Memory);
            firstStarted.TrySetResult();
            await release.Task.WaitAsync(ct);
            Interlocked.Decrement(ref inFlight);
            return ReconcileResult.Done;
        });
        var name = "burst-" + ns;
        await using var running = await RunningController.StartAsync(NewController(name, client, ns, reconciler));
        await Eventually.WithinAsync(firstStarted.Task);

        // 20 spec changes arrive while the first reconcile is still running, with 3 idle workers ready.
        TestVm last = null!;
        for (var i = 1; i <= 20; i++)
        {
            last = await Vms.SetMemoryAsync(client, ns, "burst", $"{i}Mi");
        }
        await Eventually.TrueAsync(() => running.Controller.Cache?.Get(ns, "burst")?.Metadata.ResourceVersion == last.Metadata.ResourceVersion, "the cache to hold the last change");
        Assert.Single(seen);
        release.SetResult();

        await Eventually.TrueAsync(() => Reconciles(name, "success") == 2, "the second reconcile");
        Assert.Equal(["256Mi", "20Mi"], seen);
        Assert.False(overlapped);
    }

    [Fact]
    public async Task A_failing_reconcile_is_retried_with_growing_backoff_until_it_succeeds_and_others_are_served_meanwhile()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        await Vms.CreateAsync(client, ns, "flaky");
        await Vms.CreateAsync(client, ns, "fine");
        var attempts = new ConcurrentQueue<DateTime>();
        var fineDone = 0;
        var reconciler = new DelegateReconciler((vm, _) =>
        {
            if (vm.Metadata.Name == "fine")
            {
                Interlocked.Increment(ref fineDone);
                return Task.FromResult(ReconcileResult.Done);
            }
            attempts.Enqueue(DateTime.UtcNow);
            if (attempts.Count <= 3)
            {
                throw new InvalidOperationException("the host is not answering (test)");
            }
            return Task.FromResult(ReconcileResult.Done);
        });
        var name = "flaky-" + ns;
        await using var running = await RunningController.StartAsync(NewController(name, client, ns, reconciler));

        await Eventually.TrueAsync(() => Reconciles(name, "success") == 2, "both objects reconciled successfully");
        Assert.Equal(1, fineDone);
        Assert.Equal(3, _metrics.ReconcileErrors.WithLabels(name).Value);
        Assert.Equal(3, Reconciles(name, "error"));
        Assert.Equal(3, _metrics.WorkqueueRetries.WithLabels(name).Value);
        var t = attempts.ToArray();
        Assert.Equal(4, t.Length);
        // base 50 ms * 2^n for the n-th consecutive failure: at least 100, 200 and 400 ms apart.
        Assert.True(t[1] - t[0] >= TimeSpan.FromMilliseconds(95), $"first retry after {(t[1] - t[0]).TotalMilliseconds} ms");
        Assert.True(t[2] - t[1] >= TimeSpan.FromMilliseconds(195), $"second retry after {(t[2] - t[1]).TotalMilliseconds} ms");
        Assert.True(t[3] - t[2] >= TimeSpan.FromMilliseconds(395), $"third retry after {(t[3] - t[2]).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task RequeueAfter_brings_the_key_back_without_any_change_and_Terminal_waits_for_one()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        await Vms.CreateAsync(client, ns, "poller");
        var passes = new ConcurrentQueue<(DateTime At, string? Memory)>();
        var reconciler = new DelegateReconciler((vm, _) =>
        {
            passes.Enqueue((DateTime.UtcNow, vm.Memory));
            return Task.FromResult(passes.Count switch
            {
                <= 2 => ReconcileResult.RequeueAfter(TimeSpan.FromMilliseconds(200)),
                3 => ReconcileResult.Terminal("the image is missing (test)"),
                _ => ReconcileResult.Done,
            });
        });
        var name = "requeue-" + ns;
        await using var running = await RunningController.StartAsync(NewController(name, client, ns, reconciler));

        await Eventually.TrueAsync(() => Reconciles(name, "terminal") == 1, "two requeues then a terminal result");
        Assert.Equal(2, Reconciles(name, "requeue_after"));
        var p = passes.ToArray();
        Assert.True(p[1].At - p[0].At >= TimeSpan.FromMilliseconds(190));
        Assert.True(p[2].At - p[1].At >= TimeSpan.FromMilliseconds(190));

        // Terminal: nothing more until the object changes.
        await Vms.SetMemoryAsync(client, ns, "poller", "1Gi");
        await Eventually.TrueAsync(() => Reconciles(name, "success") == 1, "the reconcile the change brings");
        Assert.Equal(4, passes.Count);
        Assert.Equal("1Gi", passes.Last().Memory);
    }

    [Fact]
    public async Task Finalizers_are_added_then_run_one_per_pass_on_deletion_until_the_object_is_gone()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        var api = Vms.Api(client, ns);
        var finalized = new ConcurrentQueue<string>();
        var finalizers = new FinalizerSet<TestVm>(api)
            .Register("vmkernel.io/disks", (vm, _) =>
            {
                finalized.Enqueue("disks of " + vm.Metadata.Name);
                return Task.CompletedTask;
            })
            .Register("vmkernel.io/network", (vm, _) =>
            {
                finalized.Enqueue("network of " + vm.Metadata.Name);
                return Task.CompletedTask;
            });
        var deletedKeys = new ConcurrentQueue<ObjectKey>();
        var reconciler = new DelegateReconciler(async (vm, ct) =>
        {
            var step = await finalizers.ApplyAsync(vm, ct);
            return step.Result ?? ReconcileResult.Done;
        }, deletedKeys.Enqueue);
        var name = "finalizers-" + ns;
        await using var running = await RunningController.StartAsync(new Controller<TestVm>(name, api, reconciler, new ControllerOptions { RateLimiter = FastBackoff }, _metrics));

        await Vms.CreateAsync(client, ns, "vm1");
        await Eventually.TrueAsync(() => running.Controller.Cache?.Get(ns, "vm1")?.Metadata.Finalizers?.Count == 2, "both finalizers on the object");
        Assert.Equal(["vmkernel.io/disks", "vmkernel.io/network"], (await Vms.TryGetAsync(client, ns, "vm1"))!.Metadata.Finalizers);

        await Vms.DeleteAsync(client, ns, "vm1");
        var terminating = await Vms.TryGetAsync(client, ns, "vm1");
        Assert.NotNull(terminating?.Metadata.DeletionTimestamp);
        await Eventually.TrueAsync(() => !deletedKeys.IsEmpty, "the object to be gone from the cache");
        Assert.Null(await Vms.TryGetAsync(client, ns, "vm1"));
        Assert.Equal(["disks of vm1", "network of vm1"], finalized);
        Assert.Equal([new ObjectKey(ns, "vm1")], deletedKeys);
        Assert.Equal(0, Reconciles(name, "error"));
    }

    [Fact]
    public async Task An_idle_controller_does_no_reconciles_after_the_initial_sync_even_though_it_writes_status()
    {
        const int objects = 20;
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        for (var i = 0; i < objects; i++)
        {
            await Vms.CreateAsync(client, ns, $"idle-{i:D2}");
        }
        var reconciler = new DelegateReconciler(async (vm, ct) =>
        {
            if (!Generations.IsObserved(vm, vm.Status?["observedGeneration"]?.GetValue<long>()))
            {
                await Vms.SetStatusAsync(client, ns, vm.Metadata.Name, vm.Metadata.Generation ?? 0);
            }
            return ReconcileResult.Done;
        });
        var name = "idle-" + ns;
        await using var running = await RunningController.StartAsync(NewController(name, client, ns, reconciler));
        await Eventually.TrueAsync(() => running.Controller.Cache!.List().Count(vm => vm.Status?["observedGeneration"] is not null) == objects,
            "every object's status write to come back through the watch");
        var afterSync = Reconciles(name, "success");
        Assert.Equal(objects, afterSync);

        // The observation window: status echoes, bookmarks (every 250 ms here) and watch restarts must not reconcile.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(afterSync, Reconciles(name, "success"));
        Assert.Equal(0, Reconciles(name, "error"));
        Assert.Equal(0, _metrics.WorkqueueDepth.WithLabels(name).Value);

        // And a real change is still seen.
        await Vms.SetMemoryAsync(client, ns, "idle-07", "1Gi");
        await Eventually.TrueAsync(() => Reconciles(name, "success") == afterSync + 1, "the one reconcile a spec change brings");
    }
}
