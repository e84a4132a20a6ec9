using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Vmk.ApiServer.Tests;

/// <summary>The official C# client (KubernetesClient), unchanged, as the operator will use it.</summary>
public sealed class ClientTests : IClassFixture<ServerFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly TestServer _server;

    public ClientTests(ServerFixture fixture)
    {
        _server = fixture.Server;
    }

    /// <summary>Starts a watch of VirtualMachines and funnels its events into a channel (errors too).</summary>
    private static (Channel<(WatchEventType Type, JsonObject? Object, Exception? Error)> Events, CancellationTokenSource Stop) Watch(
        Kubernetes client, string ns, string? resourceVersion, bool bookmarks = false, string? fieldSelector = null)
    {
        var events = Channel.CreateUnbounded<(WatchEventType, JsonObject?, Exception?)>();
        var stop = new CancellationTokenSource();
        var stream = client.CustomObjects.WatchListNamespacedCustomObjectAsync(
            Vms.Group, Vms.Version, ns, Vms.Plural, resourceVersion: resourceVersion,
            allowWatchBookmarks: bookmarks, fieldSelector: fieldSelector,
            onError: e => events.Writer.TryWrite((WatchEventType.Error, null, e)), cancellationToken: stop.Token);
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var (type, obj) in stream)
                {
                    events.Writer.TryWrite((type, Vms.ToNode(obj), null));
                }
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException)
            {
            }
            events.Writer.TryComplete();
        });
        return (events, stop);
    }

    private static async Task<(WatchEventType Type, JsonObject? Object, Exception? Error)> NextAsync(Channel<(WatchEventType, JsonObject?, Exception?)> events, Func<(WatchEventType Type, JsonObject? Object, Exception? Error), bool>? match = null)
    {
        using var cts = new CancellationTokenSource(Deadline);
        while (true)
        {
            var e = await events.Reader.ReadAsync(cts.Token);
            if (match is null || match(e))
            {
                return e;
            }
        }
    }

    [Fact]
    public async Task List_then_watch_from_the_list_version_sees_exactly_the_later_changes_in_order()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        await Vms.CreateAsync(client, ns, Vms.Manifest("a"));
        await Vms.CreateAsync(client, ns, Vms.Manifest("b"));
        var list = Vms.ToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural));
        Assert.Equal(2, list["items"]!.AsArray().Count);
        var listRv = list["metadata"]!["resourceVersion"]!.GetValue<string>();

        await Vms.CreateAsync(client, ns, Vms.Manifest("c"));
        await client.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch("{\"spec\":{\"runPolicy\":\"Halted\"}}", V1Patch.PatchType.MergePatch), Vms.Group, Vms.Version, ns, Vms.Plural, "a");
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, "b");

        var (events, stop) = Watch(client, ns, listRv);
        using (stop)
        {
            var e1 = await NextAsync(events);
            var e2 = await NextAsync(events);
            var e3 = await NextAsync(events);
            Assert.Equal((WatchEventType.Added, "c"), (e1.Type, e1.Object!["metadata"]!["name"]!.GetValue<string>()));
            Assert.Equal((WatchEventType.Modified, "a"), (e2.Type, e2.Object!["metadata"]!["name"]!.GetValue<string>()));
            Assert.Equal((WatchEventType.Deleted, "b"), (e3.Type, e3.Object!["metadata"]!["name"]!.GetValue<string>()));
            Assert.Equal("Halted", e2.Object["spec"]!["runPolicy"]!.GetValue<string>());

            // Resume from the middle: only what followed.
            var (resumed, stop2) = Watch(client, ns, Vms.Rv(e2.Object));
            using (stop2)
            {
                var r1 = await NextAsync(resumed);
                Assert.Equal((WatchEventType.Deleted, "b"), (r1.Type, r1.Object!["metadata"]!["name"]!.GetValue<string>()));
            }

            // And the live stream goes on.
            await Vms.CreateAsync(client, ns, Vms.Manifest("d"));
            var e4 = await NextAsync(events);
            Assert.Equal((WatchEventType.Added, "d"), (e4.Type, e4.Object!["metadata"]!["name"]!.GetValue<string>()));
            await stop.CancelAsync();
        }
    }

    [Fact]
    public async Task Watch_with_bookmarks_receives_bookmarks_carrying_a_resource_version()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        var created = await Vms.CreateAsync(client, ns, Vms.Manifest("marked"));
        var (events, stop) = Watch(client, ns, Vms.Rv(created), bookmarks: true);
        using (stop)
        {
            var bookmark = await NextAsync(events, e => e.Type == WatchEventType.Bookmark);
            var rv = long.Parse(bookmark.Object!["metadata"]!["resourceVersion"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(rv >= long.Parse(Vms.Rv(created), System.Globalization.CultureInfo.InvariantCulture));
            await stop.CancelAsync();
        }
    }

    [Fact]
    public async Task Watch_from_a_compacted_version_gets_410_and_a_relist_recovers()
    {
        await using var small = await TestServer.StartAsync(watchLogCapacity: 16);
        using var client = small.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        var first = await Vms.CreateAsync(client, ns, Vms.Manifest("v0"));
        for (var i = 1; i <= 40; i++)
        {
            await Vms.CreateAsync(client, ns, Vms.Manifest("v" + i));
        }

        var (events, stop) = Watch(client, ns, Vms.Rv(first));
        using (stop)
        {
            var error = await NextAsync(events);
            var gone = Assert.IsType<KubernetesException>(error.Error);
            Assert.Equal(410, gone.Status.Code);
            Assert.Equal("Expired", gone.Status.Reason);
        }

        // The informer's answer to 410: list again, watch from the list's version.
        var list = Vms.ToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural));
        Assert.Equal(41, list["items"]!.AsArray().Count);
        var (again, stop2) = Watch(client, ns, list["metadata"]!["resourceVersion"]!.GetValue<string>());
        using (stop2)
        {
            await Vms.CreateAsync(client, ns, Vms.Manifest("after"));
            var e = await NextAsync(again);
            Assert.Equal((WatchEventType.Added, "after"), (e.Type, e.Object!["metadata"]!["name"]!.GetValue<string>()));
            await stop2.CancelAsync();
        }
    }

    [Fact]
    public async Task Update_with_a_stale_resource_version_is_rejected_with_409()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        var created = await Vms.CreateAsync(client, ns, Vms.Manifest("contended"));

        var mine = (JsonObject)created.DeepClone();
        mine["spec"]!["memory"]!["size"] = "512Mi";
        var updated = Vms.ToNode(await client.CustomObjects.ReplaceNamespacedCustomObjectAsync(mine, Vms.Group, Vms.Version, ns, Vms.Plural, "contended"));
        Assert.NotEqual(Vms.Rv(created), Vms.Rv(updated));

        var theirs = (JsonObject)created.DeepClone();
        theirs["spec"]!["memory"]!["size"] = "1Gi";
        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CustomObjects.ReplaceNamespacedCustomObjectAsync(theirs, Vms.Group, Vms.Version, ns, Vms.Plural, "contended"));
        Assert.Equal(HttpStatusCode.Conflict, e.Response.StatusCode);
        Assert.Contains("the object has been modified", e.Response.Content);
        Assert.Equal("512Mi", (await Vms.GetAsync(client, ns, "contended"))["spec"]!["memory"]!["size"]!.GetValue<string>());

        // A duplicate create is a 409 too.
        var dup = await Assert.ThrowsAsync<HttpOperationException>(() => Vms.CreateAsync(client, ns, Vms.Manifest("contended")));
        Assert.Equal(HttpStatusCode.Conflict, dup.Response.StatusCode);
        Assert.Contains("AlreadyExists", dup.Response.Content);
    }

    [Fact]
    public async Task Status_subresource_updates_status_only_and_never_bumps_generation()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        var created = await Vms.CreateAsync(client, ns, Vms.Manifest("statused"));
        Assert.Equal(1, Vms.Generation(created));

        var withStatus = (JsonObject)created.DeepClone();
        withStatus["status"] = new JsonObject { ["phase"] = "Running", ["observedGeneration"] = 1 };
        withStatus["spec"]!["memory"]!["size"] = "8Gi"; // ignored by the status endpoint
        var afterStatus = Vms.ToNode(await client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync(withStatus, Vms.Group, Vms.Version, ns, Vms.Plural, "statused"));
        Assert.Equal(1, Vms.Generation(afterStatus));
        Assert.Equal("Running", afterStatus["status"]!["phase"]!.GetValue<string>());
        Assert.Equal("256Mi", afterStatus["spec"]!["memory"]!["size"]!.GetValue<string>());

        // The main endpoint ignores status and bumps generation for the spec change.
        var specChange = (JsonObject)afterStatus.DeepClone();
        specChange["spec"]!["memory"]!["size"] = "1Gi";
        specChange["status"]!["phase"] = "Failed";
        var afterSpec = Vms.ToNode(await client.CustomObjects.ReplaceNamespacedCustomObjectAsync(specChange, Vms.Group, Vms.Version, ns, Vms.Plural, "statused"));
        Assert.Equal(2, Vms.Generation(afterSpec));
        Assert.Equal("Running", afterSpec["status"]!["phase"]!.GetValue<string>());

        // Labels change metadata only: no new generation.
        var afterLabel = Vms.ToNode(await client.CustomObjects.PatchNamespacedCustomObjectAsync(
            new V1Patch("{\"metadata\":{\"labels\":{\"tier\":\"gold\"}}}", V1Patch.PatchType.MergePatch), Vms.Group, Vms.Version, ns, Vms.Plural, "statused"));
        Assert.Equal(2, Vms.Generation(afterLabel));

        // Status is validated against the schema like the rest.
        var bad = await Assert.ThrowsAsync<HttpOperationException>(() => client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(
            new V1Patch("{\"status\":{\"phase\":\"Dancing\"}}", V1Patch.PatchType.MergePatch), Vms.Group, Vms.Version, ns, Vms.Plural, "statused"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.Response.StatusCode);
        Assert.Contains("status.phase: Unsupported value: \"Dancing\"", JsonNode.Parse(bad.Response.Content)!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Deleting_an_owner_deletes_its_dependents_in_the_background()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        var owner = await Vms.CreateAsync(client, ns, Vms.Manifest("owner"));
        var ownerRef = new V1OwnerReference
        {
            ApiVersion = "vmkernel.io/v1alpha1",
            Kind = "VirtualMachine",
            Name = "owner",
            Uid = owner["metadata"]!["uid"]!.GetValue<string>(),
            Controller = true,
        };
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap
        {
            Metadata = new V1ObjectMeta { Name = "owned-config", OwnerReferences = [ownerRef] },
            Data = new Dictionary<string, string> { ["k"] = "v" },
        }, ns);
        var child = Vms.Manifest("owned-vm");
        child["metadata"]!["ownerReferences"] = JsonSerializer.SerializeToNode(new[] { ownerRef }, new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull, PropertyNamingPolicy = JsonNamingPolicy.CamelCase });
        var childVm = await Vms.CreateAsync(client, ns, child);
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "unowned" } }, ns);

        var configs = await client.CoreV1.ListNamespacedConfigMapAsync(ns);
        var (vmEvents, stop) = Watch(client, ns, Vms.Rv(childVm), fieldSelector: "metadata.name=owned-vm");
        using (stop)
        {
            var cmDeleted = Channel.CreateUnbounded<string>();
            using var cmStop = new CancellationTokenSource();
            var cmWatch = client.CoreV1.WatchListNamespacedConfigMapAsync(ns, resourceVersion: configs.Metadata.ResourceVersion, cancellationToken: cmStop.Token);
            _ = Task.Run(async () =>
            {
                try
                {
                    await foreach (var (type, cm) in cmWatch)
                    {
                        if (type == WatchEventType.Deleted)
                        {
                            cmDeleted.Writer.TryWrite(cm.Metadata.Name);
                        }
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or HttpRequestException or IOException)
                {
                }
            });

            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, "owner");

            using var deadline = new CancellationTokenSource(Deadline);
            Assert.Equal("owned-config", await cmDeleted.Reader.ReadAsync(deadline.Token));
            var vmGone = await NextAsync(vmEvents, e => e.Type == WatchEventType.Deleted);
            Assert.Equal("owned-vm", vmGone.Object!["metadata"]!["name"]!.GetValue<string>());
            await cmStop.CancelAsync();
            await stop.CancelAsync();
        }
        var left = await client.CoreV1.ListNamespacedConfigMapAsync(ns);
        Assert.Equal(["unowned"], left.Items.Select(c => c.Metadata.Name));
    }

    [Fact]
    public async Task Label_and_field_selectors_and_pagination_filter_lists()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        for (var i = 0; i < 7; i++)
        {
            await Vms.CreateAsync(client, ns, Vms.Manifest($"p{i}", labels: new Dictionary<string, string> { ["tier"] = i % 2 == 0 ? "gold" : "silver" }));
        }
        var gold = Vms.ToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, labelSelector: "tier=gold"));
        Assert.Equal(["p0", "p2", "p4", "p6"], gold["items"]!.AsArray().Select(o => o!["metadata"]!["name"]!.GetValue<string>()));
        var notGold = Vms.ToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, labelSelector: "tier notin (gold)"));
        Assert.Equal(3, notGold["items"]!.AsArray().Count);
        var byName = Vms.ToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, fieldSelector: "metadata.name=p3"));
        Assert.Equal("p3", byName["items"]![0]!["metadata"]!["name"]!.GetValue<string>());

        var names = new List<string>();
        string? token = null;
        var pages = 0;
        do
        {
            var page = Vms.ToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, limit: 3, continueParameter: token));
            names.AddRange(page["items"]!.AsArray().Select(o => o!["metadata"]!["name"]!.GetValue<string>()));
            token = page["metadata"]!["continue"]?.GetValue<string>();
            pages++;
        }
        while (!string.IsNullOrEmpty(token));
        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"p{i}"), names);

        var badField = await Assert.ThrowsAsync<HttpOperationException>(() => client.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, fieldSelector: "spec.memory=1"));
        Assert.Equal(HttpStatusCode.BadRequest, badField.Response.StatusCode);
        Assert.Contains("field label not supported: spec.memory", badField.Response.Content);
    }

    [Fact]
    public async Task Leases_and_events_k8s_io_work_for_leader_election_and_recording()
    {
        using var client = _server.Client();
        var ns = await Vms.NewNamespaceAsync(client);
        var lease = await client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
        {
            Metadata = new V1ObjectMeta { Name = "vm-operator" },
            Spec = new V1LeaseSpec { HolderIdentity = "op-1", LeaseDurationSeconds = 15, AcquireTime = DateTime.UtcNow, RenewTime = DateTime.UtcNow },
        }, ns);
        lease.Spec.HolderIdentity = "op-2";
        var replaced = await client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, "vm-operator", ns);
        Assert.Equal("op-2", replaced.Spec.HolderIdentity);
        lease.Spec.HolderIdentity = "op-3"; // stale copy
        var stale = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, "vm-operator", ns));
        Assert.Equal(HttpStatusCode.Conflict, stale.Response.StatusCode);

        await client.EventsV1.CreateNamespacedEventAsync(new Eventsv1Event
        {
            Metadata = new V1ObjectMeta { Name = "vm.evt1" },
            EventTime = DateTime.UtcNow,
            Regarding = new V1ObjectReference { Kind = "VirtualMachine", Name = "vm", NamespaceProperty = ns, ApiVersion = "vmkernel.io/v1alpha1" },
            Reason = "Started",
            Note = "guest booted",
            Type = "Normal",
            Action = "PowerOn",
            ReportingController = "vmkernel.io/vm-operator",
            ReportingInstance = "op-2",
        }, ns);
        var core = await client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=vm");
        var ev = Assert.Single(core.Items);
        Assert.Equal("guest booted", ev.Message);
        Assert.Equal("VirtualMachine", ev.InvolvedObject.Kind);
        var viaEvents = await client.EventsV1.ListNamespacedEventAsync(ns, fieldSelector: "regarding.name=vm");
        Assert.Equal("guest booted", Assert.Single(viaEvents.Items).Note);
    }
}
