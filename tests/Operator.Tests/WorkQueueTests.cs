using Prometheus;
using Vmk.Operator.Runtime.Metrics;
using Vmk.Operator.Runtime.Queue;

namespace Vmk.Operator.Tests;

/// <summary>The work queue on its own: no API involved, so these exercise its rules directly.</summary>
public sealed class WorkQueueTests
{
    private readonly RuntimeMetrics _metrics = new(Metrics.NewCustomRegistry());

    [Fact]
    public async Task A_burst_of_adds_of_one_key_is_one_item_and_metrics_count_the_real_adds()
    {
        using var queue = new WorkQueue<string>("burst", metrics: _metrics);
        for (var i = 0; i < 100; i++)
        {
            queue.Add("ns/a");
        }
        queue.Add("ns/b");
        Assert.Equal(2, queue.Count);
        Assert.Equal(2, _metrics.WorkqueueAdds.WithLabels("burst").Value);
        Assert.Equal(2, _metrics.WorkqueueDepth.WithLabels("burst").Value);
        var (_, first) = await queue.GetAsync();
        Assert.Equal("ns/a", first);
        Assert.Equal(1, _metrics.WorkqueueDepth.WithLabels("burst").Value);
    }

    [Fact]
    public async Task A_key_added_while_in_flight_is_handed_out_again_only_after_Done()
    {
        using var queue = new WorkQueue<string>("inflight", metrics: _metrics);
        queue.Add("k");
        var (_, key) = await queue.GetAsync();
        queue.Add("k");
        queue.Add("k");
        Assert.Equal(0, queue.Count);
        Assert.Equal(1, queue.InFlight);

        // A second worker asking now must not get the key that is in flight.
        var second = queue.GetAsync();
        Assert.False(second.IsCompleted);
        queue.Add("other");
        var (_, other) = await Eventually.WithinAsync(second);
        Assert.Equal("other", other);

        queue.Done(key);
        Assert.Equal(1, queue.Count);
        var (_, again) = await queue.GetAsync();
        Assert.Equal("k", again);
        Assert.Equal(2, queue.InFlight);
        queue.Done("k");
        queue.Done("other");
        Assert.Equal(0, queue.Count);
        Assert.Equal(0, queue.InFlight);
    }

    [Fact]
    public async Task AddAfter_delivers_after_the_delay_and_the_earliest_pending_delay_wins()
    {
        using var queue = new WorkQueue<string>("delayed", metrics: _metrics);
        var started = DateTime.UtcNow;
        queue.AddAfter("k", TimeSpan.FromMinutes(10));
        queue.AddAfter("k", TimeSpan.FromMilliseconds(200));
        var (_, key) = await Eventually.WithinAsync(queue.GetAsync());
        Assert.Equal("k", key);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(190));
        queue.Done(key);
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void Rate_limited_retries_follow_2_to_the_min_n_5_plus_jitter_and_Forget_resets()
    {
        var limiter = new ExponentialBackoffRateLimiter();
        for (var n = 1; n <= 8; n++)
        {
            var expected = Math.Pow(2, Math.Min(n, 5));
            var delay = limiter.When(n).TotalSeconds;
            Assert.InRange(delay, expected, expected + 1);
        }

        using var queue = new WorkQueue<string>("retries", new ExponentialBackoffRateLimiter { BaseDelay = TimeSpan.FromMinutes(1) }, _metrics);
        queue.AddRateLimited("k");
        queue.AddRateLimited("k");
        Assert.Equal(2, queue.NumRequeues("k"));
        Assert.Equal(2, _metrics.WorkqueueRetries.WithLabels("retries").Value);
        queue.Forget("k");
        Assert.Equal(0, queue.NumRequeues("k"));
    }

    [Fact]
    public async Task Shutdown_hands_out_what_is_queued_then_ends_and_drain_waits_for_work_in_flight()
    {
        var queue = new WorkQueue<string>("shutdown", metrics: _metrics);
        queue.Add("a");
        queue.Add("b");
        var (_, a) = await queue.GetAsync();
        var idle = new WorkQueue<string>("idle", metrics: _metrics);
        var waiting = idle.GetAsync();
        idle.ShutDown();
        Assert.False((await Eventually.WithinAsync(waiting)).Ok);

        var drained = queue.ShutDownWithDrainAsync();
        queue.Add("c");
        var (okB, b) = await queue.GetAsync();
        Assert.True(okB);
        Assert.Equal("b", b);
        Assert.False((await queue.GetAsync()).Ok);
        queue.Done(a);
        Assert.False(drained.IsCompleted);
        queue.Done(b);
        await Eventually.WithinAsync(drained);
        queue.Dispose();
        idle.Dispose();
    }
}
