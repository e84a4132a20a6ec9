using System.Collections.Concurrent;
using k8s;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Tests;

/// <summary>The informer against the real API server: cache, events, resume after a drop, relist after 410, bookmarks.</summary>
public sealed class InformerTests : IClassFixture<ApiServerFixture>
{
    private static readonly InformerOptions FastRetry = new() { MinBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(500) };

    private readonly ApiServerFixture _server;

    public InformerTests(ApiServerFixture server)
    {
        _server = server;
    }

    /// <summary>Every event the informer raised, as "Added a", "Updated a 512Mi", "Deleted b".</summary>
    private static ConcurrentQueue<string> Record(Informer<TestVm> informer)
    {
        var log = new ConcurrentQueue<string>();
        informer.Added += o => log.Enqueue("Added " + o.Metadata.Name);
        informer.Updated += (_, o) => log.Enqueue($"Updated {o.Metadata.Name} {o.Memory}");
        informer.Deleted += o => log.Enqueue("Deleted " + o.Metadata.Name);
        return log;
    }

    private static async Task<(Task Run, CancellationTokenSource Stop)> StartAsync(Informer<TestVm> informer)
    {
        var stop = new CancellationTokenSource();
        var run = informer.RunAsync(stop.Token);
        await Eventually.WithinAsync(informer.WaitForSyncAsync(stop.Token));
        return (run, stop);
    }

    private static async Task StopAsync(Task run, CancellationTokenSource stop)
    {
        await stop.CancelAsync();
        await Eventually.WithinAsync(run);
        stop.Dispose();
    }

    [Fact]
    public async Task Cache_follows_create_update_and_delete_of_a_custom_resource()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        await Vms.CreateAsync(client, ns, "before");
        var informer = new Informer<TestVm>(Vms.Api(client, ns), FastRetry);
        var log = Record(informer);
        var (run, stop) = await StartAsync(informer);
        Assert.True(informer.HasSynced);
        Assert.Equal("before", Assert.Single(informer.List()).Metadata.Name);

        await Vms.CreateAsync(client, ns, "a");
        var updated = await Vms.SetMemoryAsync(client, ns, "a", "512Mi");
        await Vms.DeleteAsync(client, ns, "before");
        await Eventually.TrueAsync(() => log.Count >= 4, "four events");

        Assert.Equal(["Added before", "Added a", "Updated a 512Mi", "Deleted before"], log);
        Assert.Null(informer.Get(ns, "before"));
        var cached = informer.Get(ns, "a");
        Assert.NotNull(cached);
        Assert.Equal("512Mi", cached.Memory);
        Assert.Equal(updated.Metadata.ResourceVersion, cached.Metadata.ResourceVersion);
        await StopAsync(run, stop);
    }

    [Fact]
    public async Task A_dropped_watch_resumes_from_the_last_version_without_missing_events_or_relisting()
    {
        var ns = await _server.NewNamespaceAsync();
        using var network = new FlakyNetwork();
        using var informerClient = _server.Client(network);
        using var client = _server.Client();
        await Vms.CreateAsync(client, ns, "old");
        var informer = new Informer<TestVm>(Vms.Api(informerClient, ns), FastRetry);
        var log = Record(informer);
        var (run, stop) = await StartAsync(informer);
        await Vms.CreateAsync(client, ns, "live");
        await Eventually.TrueAsync(() => informer.Get(ns, "live") is not null, "the live watch delivers");
        var watchesBefore = informer.WatchCount;

        // The connection drops; changes happen while the informer cannot see the server.
        network.Partition();
        await Vms.CreateAsync(client, ns, "during");
        await Vms.SetMemoryAsync(client, ns, "live", "1Gi");
        await Vms.DeleteAsync(client, ns, "old");
        network.Heal();

        await Eventually.TrueAsync(() => log.Count >= 5, "the changes made during the partition");
        Assert.Equal(["Added old", "Added live", "Added during", "Updated live 1Gi", "Deleted old"], log);
        Assert.Equal(1, informer.ListCount);
        Assert.True(informer.WatchCount > watchesBefore);
        await StopAsync(run, stop);
    }

    [Fact]
    public async Task A_watch_ended_by_its_timeout_is_restarted_and_keeps_delivering()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        var informer = new Informer<TestVm>(Vms.Api(client, ns), new InformerOptions { WatchTimeout = TimeSpan.FromSeconds(1), MinBackoff = TimeSpan.FromMilliseconds(50) });
        var log = Record(informer);
        var (run, stop) = await StartAsync(informer);
        await Eventually.TrueAsync(() => informer.WatchCount >= 3, "three watches (each ended by the server after its timeout)");
        await Vms.CreateAsync(client, ns, "after-timeouts");
        await Eventually.TrueAsync(() => !log.IsEmpty, "the create");
        Assert.Equal(["Added after-timeouts"], log);
        Assert.Equal(1, informer.ListCount);
        await StopAsync(run, stop);
    }

    [Fact]
    public async Task Bookmarks_advance_the_resume_version_while_the_resource_is_quiet()
    {
        var ns = await _server.NewNamespaceAsync();
        using var client = _server.Client();
        var informer = new Informer<TestVm>(Vms.Api(client, ns), FastRetry);
        var (run, stop) = await StartAsync(informer);
        var listed = long.Parse(informer.LastResourceVersion, System.Globalization.CultureInfo.InvariantCulture);

        // Changes elsewhere move the server's version; only a bookmark can tell this watch about it.
        var cm = await client.CoreV1.CreateNamespacedConfigMapAsync(new k8s.Models.V1ConfigMap { Metadata = new() { Name = "elsewhere" } }, ns);
        var elsewhere = long.Parse(cm.Metadata.ResourceVersion, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(elsewhere > listed);
        await Eventually.TrueAsync(() => long.Parse(informer.LastResourceVersion, System.Globalization.CultureInfo.InvariantCulture) >= elsewhere,
            "a bookmark carrying the newer resourceVersion");
        Assert.Empty(informer.List());
        await StopAsync(run, stop);
    }

    [Fact]
    public async Task After_410_Gone_the_informer_relists_and_the_diff_becomes_events()
    {
        // A server that keeps only 16 changes: a watch resuming from before them is answered 410 Gone.
        await using var small = await ApiServerFixture.StartAsync(watchLogCapacity: 16);
        var ns = await small.NewNamespaceAsync();
        using var network = new FlakyNetwork();
        using var informerClient = small.Client(network);
        using var client = small.Client();
        await Vms.CreateAsync(client, ns, "keep");
        await Vms.CreateAsync(client, ns, "change");
        await Vms.CreateAsync(client, ns, "remove");
        var informer = new Informer<TestVm>(Vms.Api(informerClient, ns), FastRetry);
        var log = Record(informer);
        var (run, stop) = await StartAsync(informer);
        Assert.Equal(3, informer.Cache.Count);

        network.Partition();
        await Vms.SetMemoryAsync(client, ns, "change", "2Gi");
        await Vms.DeleteAsync(client, ns, "remove");
        for (var i = 0; i < 30; i++)
        {
            await Vms.CreateAsync(client, ns, $"new-{i:D2}");
        }
        network.Heal();

        await Eventually.TrueAsync(() => informer.ListCount == 2 && informer.Cache.Count == 32, "a relist that brings the cache up to date");
        Assert.Null(informer.Get(ns, "remove"));
        Assert.Equal("2Gi", informer.Get(ns, "change")!.Memory);
        var afterSync = log.Skip(3).ToList();
        Assert.Equal(30, afterSync.Count(e => e.StartsWith("Added new-", StringComparison.Ordinal)));
        Assert.Contains("Updated change 2Gi", afterSync);
        Assert.Contains("Deleted remove", afterSync);
        Assert.Equal(32, afterSync.Count);

        // And it watches again from the relist's version.
        await Vms.CreateAsync(client, ns, "after-relist");
        await Eventually.TrueAsync(() => informer.Get(ns, "after-relist") is not null, "the watch after the relist");
        Assert.Equal(2, informer.ListCount);
        await StopAsync(run, stop);
    }
}
