using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Vmk.ApiServer.Api;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Selectors;
using Vmk.ApiServer.Storage;

namespace Vmk.ApiServer.Http;

/// <summary>
/// Watch over a chunked HTTP response: one JSON event per line. Resumes from a resourceVersion out of the store's
/// change log (an ERROR event with a 410 Status when the log no longer reaches back, as kube-apiserver's watch
/// cache answers), sends bookmarks when asked, and ends at <c>timeoutSeconds</c>. A change that moves an object
/// out of (into) the selector is sent as DELETED (ADDED).
/// </summary>
public sealed class WatchStreamer
{
    private static readonly byte[] Newline = "\n"u8.ToArray();

    private readonly ObjectService _service;
    private readonly TimeSpan _bookmarkInterval;
    private readonly TimeSpan _defaultTimeout;

    public WatchStreamer(ObjectService service, TimeSpan bookmarkInterval, TimeSpan defaultTimeout)
    {
        _service = service;
        _bookmarkInterval = bookmarkInterval;
        _defaultTimeout = defaultTimeout;
    }

    public async Task StreamAsync(HttpContext ctx, ResourceDefinition def, string? ns, LabelSelector? labels, FieldSelector? fields, WatchRequest request)
    {
        var store = _service.Store;
        WatchSubscription sub;
        List<StoredObject>? initial;
        long snapshotRv;
        try
        {
            (sub, initial, snapshotRv) = store.Subscribe(def.StorageResource, ns, request.FromResourceVersion);
        }
        catch (ApiException e) when (e.Code == 410)
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/json";
            await WriteLineAsync(ctx, new JsonObject { ["type"] = "ERROR", ["object"] = e.ToStatus() });
            return;
        }

        using (sub)
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/json";
            ctx.Response.Headers.CacheControl = "no-cache, private";
            var timeout = request.TimeoutSeconds is { } t and > 0 ? TimeSpan.FromSeconds(t) : _defaultTimeout;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
            cts.CancelAfter(timeout);
            var ct = cts.Token;
            await ctx.Response.StartAsync(ct);
            // Headers go out now: clients (client-go informers, kubectl wait) treat the watch as established only
            // once they have them, which would otherwise wait for the first event or bookmark.
            await ctx.Response.Body.FlushAsync(ct);
            var buffer = new MemoryStream();

            if (initial is not null)
            {
                // The initial state may hold changes still on their way to disk; it is sent once they are there.
                await store.WaitDurableAsync(snapshotRv);
                long lastRv = 0;
                foreach (var o in initial)
                {
                    if (Matches(o, labels, fields))
                    {
                        WriteEvent(buffer, def, WatchEvent.Added, o, request);
                        lastRv = Math.Max(lastRv, o.ResourceVersion);
                    }
                }
                if (request.SendInitialEvents && request.AllowBookmarks)
                {
                    // WatchList: the end of the initial state is marked by an annotated bookmark.
                    WriteBookmark(buffer, def, snapshotRv, initialEventsEnd: true);
                }
            }
            await FlushAsync(ctx, buffer, ct);

            var reader = sub.Channel.Reader;
            var nextBookmark = DateTime.UtcNow + _bookmarkInterval;
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    var wait = nextBookmark - DateTime.UtcNow;
                    if (wait <= TimeSpan.Zero)
                    {
                        if (request.AllowBookmarks)
                        {
                            store.Bookmark(sub);
                        }
                        nextBookmark = DateTime.UtcNow + _bookmarkInterval;
                        continue;
                    }
                    using var waitCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    waitCts.CancelAfter(wait);
                    bool more;
                    try
                    {
                        more = await reader.WaitToReadAsync(waitCts.Token);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        continue;
                    }
                    if (!more)
                    {
                        break;
                    }
                    while (reader.TryRead(out var e))
                    {
                        Write(buffer, def, e, labels, fields, request);
                        if (buffer.Length > 256 * 1024)
                        {
                            await FlushAsync(ctx, buffer, ct);
                        }
                    }
                    await FlushAsync(ctx, buffer, ct);
                }
            }
            catch (OperationCanceledException)
            {
                // Timeout or client gone: the stream simply ends and the client re-watches.
            }
        }
    }

    private static bool Matches(StoredObject? o, LabelSelector? labels, FieldSelector? fields)
        => o is not null && (labels?.Matches(o.Object) ?? true) && (fields?.Matches(o.Object) ?? true);

    private void Write(MemoryStream buffer, ResourceDefinition def, WatchEvent e, LabelSelector? labels, FieldSelector? fields, WatchRequest request)
    {
        if (e.Type == WatchEvent.Bookmark)
        {
            WriteBookmark(buffer, def, e.ResourceVersion, initialEventsEnd: false);
            return;
        }
        var filtered = labels is not null || fields is not null;
        var now = Matches(e.Object, labels, fields);
        var before = e.Previous is not null && Matches(e.Previous, labels, fields);
        switch (e.Type)
        {
            case WatchEvent.Added when now:
                WriteEvent(buffer, def, WatchEvent.Added, e.Object!, request);
                break;
            case WatchEvent.Modified when now && (before || !filtered):
                WriteEvent(buffer, def, WatchEvent.Modified, e.Object!, request);
                break;
            case WatchEvent.Modified when now:
                WriteEvent(buffer, def, WatchEvent.Added, e.Object!, request);
                break;
            case WatchEvent.Modified when before:
                WriteEvent(buffer, def, WatchEvent.Deleted, e.Object!, request);
                break;
            case WatchEvent.Deleted when before || now:
                WriteEvent(buffer, def, WatchEvent.Deleted, e.Object!, request);
                break;
        }
    }

    private void WriteEvent(MemoryStream buffer, ResourceDefinition def, string type, StoredObject o, WatchRequest request)
    {
        buffer.Write(Encoding.UTF8.GetBytes($"{{\"type\":\"{type}\",\"object\":"));
        if (request.AsTable)
        {
            var table = TableBuilder.Build(def, [(o.Object, _service.ToServed(def, o.Object))], o.ResourceVersion, null, null, request.IncludeObject);
            buffer.Write(JsonSerializer.SerializeToUtf8Bytes(table, Http.JsonWire.Options));
        }
        else
        {
            var served = _service.ToServed(def, o.Object);
            buffer.Write(ReferenceEquals(served, o.Object) ? o.Json : JsonSerializer.SerializeToUtf8Bytes(served, Http.JsonWire.Options));
        }
        buffer.Write("}\n"u8);
    }

    private static void WriteBookmark(MemoryStream buffer, ResourceDefinition def, long rv, bool initialEventsEnd)
    {
        var meta = new JsonObject { ["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture) };
        if (initialEventsEnd)
        {
            meta["annotations"] = new JsonObject { ["k8s.io/initial-events-end"] = "true" };
        }
        var e = new JsonObject
        {
            ["type"] = WatchEvent.Bookmark,
            ["object"] = new JsonObject { ["kind"] = def.Kind, ["apiVersion"] = def.GroupVersion, ["metadata"] = meta },
        };
        buffer.Write(JsonSerializer.SerializeToUtf8Bytes(e, Http.JsonWire.Options));
        buffer.Write(Newline);
    }

    private static async Task FlushAsync(HttpContext ctx, MemoryStream buffer, CancellationToken ct)
    {
        if (buffer.Length == 0)
        {
            return;
        }
        await ctx.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct);
        await ctx.Response.Body.FlushAsync(ct);
        buffer.SetLength(0);
    }

    private static async Task WriteLineAsync(HttpContext ctx, JsonObject e)
    {
        await ctx.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(e, Http.JsonWire.Options));
        await ctx.Response.Body.WriteAsync(Newline);
    }
}
