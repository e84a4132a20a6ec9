using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer.Api;
using Vmk.ApiServer.OpenApi;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Selectors;
using Vmk.ApiServer.Storage;
using Vmk.ApiServer.Yaml;

namespace Vmk.ApiServer.Http;

/// <summary>
/// The HTTP front: authentication, routing of discovery / OpenAPI / resource URLs, body decoding, content
/// negotiation (JSON, Table) and error answers as <c>Status</c> objects. Nothing a client sends may escape as an
/// unhandled exception: every failure becomes a Status with the right code.
/// </summary>
public sealed class ApiHandler
{
    private const int MaxBodyBytes = 3 * 1024 * 1024;

    private readonly ObjectService _service;
    private readonly ResourceRegistry _registry;
    private readonly DiscoveryDocuments _discovery;
    private readonly OpenApiDocuments _openApi;
    private readonly WatchStreamer _watch;
    private readonly string _token;
    private readonly ILogger _logger;

    public ApiHandler(ObjectService service, ResourceRegistry registry, WatchStreamer watch, string token, ILogger logger)
    {
        _service = service;
        _registry = registry;
        _discovery = new DiscoveryDocuments(registry);
        _openApi = new OpenApiDocuments(registry);
        _watch = watch;
        _token = token;
        _logger = logger;
    }

    public async Task HandleAsync(HttpContext ctx)
    {
        try
        {
            await DispatchAsync(ctx);
        }
        catch (ApiException e)
        {
            await WriteErrorAsync(ctx, e);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (BadHttpRequestException e)
        {
            await WriteErrorAsync(ctx, new ApiException(e.StatusCode, e.StatusCode == 413 ? "RequestEntityTooLarge" : "BadRequest", e.Message));
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Request {Method} {Path} failed", ctx.Request.Method, ctx.Request.Path);
            await WriteErrorAsync(ctx, new ApiException(500, "InternalError", "Internal error occurred: " + e.Message));
        }
    }

    private static async Task WriteErrorAsync(HttpContext ctx, ApiException e)
    {
        if (ctx.Response.HasStarted)
        {
            return;
        }
        await WriteJsonAsync(ctx, e.Code, e.ToStatus());
    }

    private async Task DispatchAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "/";
        if (path is "/healthz" or "/livez" or "/readyz")
        {
            ctx.Response.ContentType = "text/plain";
            await ctx.Response.WriteAsync("ok");
            return;
        }
        if (!Authenticated(ctx))
        {
            throw new ApiException(401, "Unauthorized", "Unauthorized");
        }
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var method = ctx.Request.Method;
        if (method == "GET")
        {
            if (await TryServeDiscoveryAsync(ctx, path, segments))
            {
                return;
            }
        }
        var request = RequestPath.Parse(segments) ?? throw ApiException.NotFoundPath(path);
        var def = _registry.Find(request.Group, request.Version, request.Resource);
        if (def is null)
        {
            if (_registry.Snapshot().All(d => d.Group != request.Group || d.Version != request.Version))
            {
                throw ApiException.NotFoundPath(path);
            }
            throw new ApiException(404, "NotFound", $"the server could not find the requested resource (resource {request.Resource} in {(request.Group.Length == 0 ? request.Version : request.Group + "/" + request.Version)})");
        }
        if (request.Subresource is not null && !(request.Subresource == "status" && def.StatusSubresource))
        {
            throw ApiException.NotFoundPath(path);
        }
        if (def.Namespaced && request.Namespace is null && request.Name is not null)
        {
            throw ApiException.NotFoundPath(path);
        }
        if (!def.Namespaced && request.Namespace is not null)
        {
            throw ApiException.NotFoundPath(path);
        }
        await ServeResourceAsync(ctx, def, request);
    }

    private bool Authenticated(HttpContext ctx)
    {
        var header = ctx.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var presented = Encoding.UTF8.GetBytes(header[7..].Trim());
        var expected = Encoding.UTF8.GetBytes(_token);
        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(presented, expected);
    }

    private async Task<bool> TryServeDiscoveryAsync(HttpContext ctx, string path, string[] segments)
    {
        var accept = ctx.Request.Headers.Accept.ToString();
        switch (segments)
        {
            case ["version"]:
                await WriteJsonAsync(ctx, 200, DiscoveryDocuments.Version());
                return true;
            case ["api"] or ["apis"]:
                var core = segments[0] == "api";
                var aggregated = AcceptHeader.Wants(accept, "APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2") ? ("apidiscovery.k8s.io/v2", DiscoveryDocuments.AggregatedV2)
                    : AcceptHeader.Wants(accept, "APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2beta1") ? ("apidiscovery.k8s.io/v2beta1", DiscoveryDocuments.AggregatedV2Beta1)
                    : default;
                if (aggregated != default)
                {
                    await WriteJsonAsync(ctx, 200, _discovery.Aggregated(core, aggregated.Item1), aggregated.Item2);
                }
                else if (core)
                {
                    await WriteJsonAsync(ctx, 200, DiscoveryDocuments.CoreVersions($"{ctx.Request.Host.Host}:{ctx.Connection.LocalPort}"));
                }
                else
                {
                    await WriteJsonAsync(ctx, 200, _discovery.GroupList());
                }
                return true;
            case ["api", var v]:
                await WriteJsonAsync(ctx, 200, _discovery.ResourceList("", v) ?? throw ApiException.NotFoundPath(path));
                return true;
            case ["apis", var g]:
                await WriteJsonAsync(ctx, 200, _discovery.Group(g) ?? throw ApiException.NotFoundPath(path));
                return true;
            case ["apis", var g, var v]:
                await WriteJsonAsync(ctx, 200, _discovery.ResourceList(g, v) ?? throw ApiException.NotFoundPath(path));
                return true;
            case ["openapi", "v3"]:
                await WriteJsonAsync(ctx, 200, _openApi.Index());
                return true;
            case ["openapi", "v3", ..]:
                var doc = _openApi.Document(string.Join('/', segments[2..])) ?? throw ApiException.NotFoundPath(path);
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync(doc);
                return true;
            default:
                return false;
        }
    }

    private async Task ServeResourceAsync(HttpContext ctx, ResourceDefinition def, RequestPath request)
    {
        var q = ctx.Request.Query;
        var ns = def.Namespaced ? request.Namespace : null;
        var statusOnly = request.Subresource == "status";
        var asTable = AcceptHeader.Wants(ctx.Request.Headers.Accept.ToString(), "Table", "meta.k8s.io");
        var includeObject = q["includeObject"].ToString();
        switch (ctx.Request.Method)
        {
            case "GET" when request.Name is null || request.WatchPrefix:
            {
                var labels = LabelSelector.Parse(q["labelSelector"]);
                var fieldText = q["fieldSelector"].ToString();
                if (request.Name is not null)
                {
                    fieldText = string.IsNullOrEmpty(fieldText) ? $"metadata.name={request.Name}" : $"{fieldText},metadata.name={request.Name}";
                }
                var fields = FieldSelector.Parse(fieldText, def);
                if (request.WatchPrefix || IsTrue(q["watch"]))
                {
                    // sendInitialEvents (WatchList) wants the current state first, which is never older than any
                    // resourceVersion the client names with resourceVersionMatch=NotOlderThan.
                    var initialEvents = IsTrue(q["sendInitialEvents"]);
                    var fromRv = ParseRv(q["resourceVersion"]);
                    await _watch.StreamAsync(ctx, def, ns, labels, fields, new WatchRequest(
                        initialEvents ? null : fromRv,
                        IsTrue(q["allowWatchBookmarks"]),
                        initialEvents,
                        ParseInt(q["timeoutSeconds"], "timeoutSeconds"),
                        asTable,
                        includeObject));
                    return;
                }
                var limit = ParseInt(q["limit"], "limit") ?? 0;
                var result = _service.List(def, ns, new ListOptions(labels, fields, limit, q["continue"]));
                await _service.Store.WaitDurableAsync(result.ResourceVersion);
                await WriteListAsync(ctx, def, result, asTable, includeObject);
                return;
            }
            case "GET":
            {
                var stored = _service.Get(def, ns ?? "", request.Name!);
                await _service.Store.WaitDurableAsync(stored.ResourceVersion);
                if (asTable)
                {
                    var table = TableBuilder.Build(def, [(stored.Object, _service.ToServed(def, stored.Object))], stored.ResourceVersion, null, null, includeObject);
                    await WriteJsonAsync(ctx, 200, table);
                }
                else
                {
                    await WriteObjectAsync(ctx, 200, def, stored);
                }
                return;
            }
            case "POST" when request.Name is null:
            {
                var body = await ReadObjectAsync(ctx);
                var options = WriteOptionsFrom(q);
                var created = _service.Create(def, ns, body, options);
                await _service.Store.WaitDurableAsync();
                await WriteWithWarningsAsync(ctx, 201, created, options);
                return;
            }
            case "PUT" when request.Name is not null:
            {
                var body = await ReadObjectAsync(ctx);
                var options = WriteOptionsFrom(q);
                var updated = _service.Update(def, ns ?? "", request.Name, body, statusOnly, options);
                await _service.Store.WaitDurableAsync();
                await WriteWithWarningsAsync(ctx, 200, updated, options);
                return;
            }
            case "PATCH" when request.Name is not null:
            {
                var contentType = (ctx.Request.ContentType ?? "").Split(';')[0].Trim().ToLowerInvariant();
                if (contentType is not (PatchTypes.Json or PatchTypes.Merge or PatchTypes.Strategic or PatchTypes.Apply))
                {
                    throw ApiException.UnsupportedMediaType($"the body of the request was in an unknown format - accepted media types include: {PatchTypes.Json}, {PatchTypes.Merge}, {PatchTypes.Apply}, {PatchTypes.Strategic}");
                }
                var text = await ReadBodyAsync(ctx);
                JsonNode? patch;
                try
                {
                    patch = contentType == PatchTypes.Apply ? YamlJson.ParseSingle(text) : JsonNode.Parse(text);
                }
                catch (Exception e) when (e is JsonException or FormatException)
                {
                    throw ApiException.BadRequest("error decoding patch: " + e.Message);
                }
                var options = WriteOptionsFrom(q);
                var exists = _service.Store.Get(def.StorageResource, ns ?? "", request.Name) is not null;
                var patched = _service.Patch(def, ns ?? "", request.Name, contentType, patch, statusOnly, options);
                await _service.Store.WaitDurableAsync();
                await WriteWithWarningsAsync(ctx, exists || contentType != PatchTypes.Apply ? 200 : 201, patched, options);
                return;
            }
            case "DELETE" when request.Name is not null:
            {
                var options = await DeleteOptionsFromAsync(ctx);
                var result = _service.Delete(def, ns ?? "", request.Name, options);
                await _service.Store.WaitDurableAsync();
                if (result.Deleted && !def.IsCustom)
                {
                    await WriteJsonAsync(ctx, 200, new JsonObject
                    {
                        ["kind"] = "Status",
                        ["apiVersion"] = "v1",
                        ["metadata"] = new JsonObject(),
                        ["status"] = "Success",
                        ["details"] = new JsonObject
                        {
                            ["name"] = request.Name,
                            ["group"] = def.Group,
                            ["kind"] = def.Plural,
                            ["uid"] = result.Object["metadata"]?["uid"]?.DeepClone(),
                        },
                    });
                }
                else
                {
                    await WriteJsonAsync(ctx, 200, result.Object);
                }
                return;
            }
            case "DELETE":
            {
                var options = await DeleteOptionsFromAsync(ctx);
                var labels = LabelSelector.Parse(q["labelSelector"]);
                var fields = FieldSelector.Parse(q["fieldSelector"], def);
                var list = _service.List(def, ns, new ListOptions(labels, fields, 0, null));
                foreach (var item in list.Items)
                {
                    try
                    {
                        _service.Delete(def, item.Namespace, item.Name, options);
                    }
                    catch (ApiException e) when (e.Code == 404)
                    {
                        // Deleted meanwhile: the collection delete still succeeds.
                    }
                }
                await _service.Store.WaitDurableAsync();
                await WriteJsonAsync(ctx, 200, new JsonObject { ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Success" });
                return;
            }
            default:
                throw ApiException.MethodNotAllowed($"the server does not allow this method on the requested resource ({ctx.Request.Method} {ctx.Request.Path})");
        }
    }

    private static bool IsTrue(Microsoft.Extensions.Primitives.StringValues v) => v.ToString() is "true" or "1" or "True";

    private static int? ParseInt(Microsoft.Extensions.Primitives.StringValues v, string name)
    {
        var s = v.ToString();
        if (s.Length == 0)
        {
            return null;
        }
        return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) && i >= 0
            ? i
            : throw ApiException.BadRequest($"invalid value for {name}: \"{s}\" (want a non-negative integer)");
    }

    private static long? ParseRv(Microsoft.Extensions.Primitives.StringValues v)
    {
        var s = v.ToString();
        if (s.Length == 0 || s == "0")
        {
            return null;
        }
        return long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var rv)
            ? rv
            : throw ApiException.BadRequest($"invalid resource version: \"{s}\"");
    }

    private static WriteOptions WriteOptionsFrom(IQueryCollection q)
    {
        var dryRun = q["dryRun"].ToString();
        if (dryRun.Length > 0 && dryRun != "All")
        {
            throw ApiException.BadRequest($"dryRun: Unsupported value: \"{dryRun}\": supported values: \"All\"");
        }
        var validation = q["fieldValidation"].ToString() switch
        {
            "" or "Warn" => FieldValidation.Warn,
            "Strict" => FieldValidation.Strict,
            "Ignore" => FieldValidation.Ignore,
            var other => throw ApiException.BadRequest($"fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""),
        };
        var manager = q["fieldManager"].ToString();
        return new WriteOptions(dryRun == "All", validation, manager.Length > 0 ? manager : null, IsTrue(q["force"]));
    }

    private static async Task<DeleteOptions> DeleteOptionsFromAsync(HttpContext ctx)
    {
        var q = ctx.Request.Query;
        var policy = q["propagationPolicy"].ToString();
        if (q["orphanDependents"].ToString() == "true")
        {
            policy = "Orphan";
        }
        string? uid = null;
        string? rv = null;
        var dryRun = q["dryRun"].ToString() == "All";
        var text = await ReadBodyAsync(ctx);
        if (!string.IsNullOrWhiteSpace(text))
        {
            var body = ParseBody(text, ctx.Request.ContentType) as JsonObject;
            if (body?["propagationPolicy"] is JsonValue p && p.TryGetValue<string>(out var ps))
            {
                policy = ps;
            }
            if (body?["orphanDependents"] is JsonValue o && o.TryGetValue<bool>(out var ob) && ob)
            {
                policy = "Orphan";
            }
            uid = Schema.JsonKinds.GetString(body?["preconditions"]?["uid"]);
            rv = Schema.JsonKinds.GetString(body?["preconditions"]?["resourceVersion"]);
            if (body?["dryRun"] is JsonArray d && d.Any(x => Schema.JsonKinds.GetString(x) == "All"))
            {
                dryRun = true;
            }
        }
        if (policy.Length == 0)
        {
            policy = "Background";
        }
        if (policy is not ("Background" or "Foreground" or "Orphan"))
        {
            throw ApiException.BadRequest($"propagationPolicy: Unsupported value: \"{policy}\": supported values: \"Background\", \"Foreground\", \"Orphan\"");
        }
        return new DeleteOptions(policy, uid, rv, dryRun);
    }

    private static async Task<string> ReadBodyAsync(HttpContext ctx)
    {
        var bytes = await ReadBytesAsync(ctx);
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw ApiException.BadRequest("the request body is not valid UTF-8");
        }
    }

    private static async Task<byte[]> ReadBytesAsync(HttpContext ctx)
    {
        if (ctx.Request.ContentLength > MaxBodyBytes)
        {
            throw new ApiException(413, "RequestEntityTooLarge", $"the request body is larger than {MaxBodyBytes} bytes");
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int read;
        while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxBodyBytes)
            {
                throw new ApiException(413, "RequestEntityTooLarge", $"the request body is larger than {MaxBodyBytes} bytes");
            }
        }
        return buffer.ToArray();
    }

    private static JsonNode? ParseBody(string text, string? contentType)
    {
        var type = (contentType ?? "application/json").Split(';')[0].Trim().ToLowerInvariant();
        if (type is not ("application/json" or "application/yaml" or "application/x-yaml" or "text/yaml" or "" or "*/*" or "text/plain"))
        {
            // kubectl's typed create commands send protobuf; only JSON and YAML bodies are understood here.
            throw ApiException.UnsupportedMediaType($"the body of the request was in an unknown format ({type}) - accepted media types include: application/json, application/yaml");
        }
        try
        {
            return type is "application/yaml" or "application/x-yaml" or "text/yaml"
                ? YamlJson.ParseSingle(text)
                : JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 200 });
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw ApiException.BadRequest("couldn't decode the request body: " + e.Message);
        }
    }

    private static async Task<JsonObject> ReadObjectAsync(HttpContext ctx)
    {
        if ((ctx.Request.ContentType ?? "").StartsWith("application/vnd.kubernetes.protobuf", StringComparison.OrdinalIgnoreCase))
        {
            return ProtobufBody.Decode(await ReadBytesAsync(ctx));
        }
        var text = await ReadBodyAsync(ctx);
        if (string.IsNullOrWhiteSpace(text))
        {
            throw ApiException.BadRequest("the request body is empty; send the object as JSON or YAML");
        }
        return ParseBody(text, ctx.Request.ContentType) as JsonObject
            ?? throw ApiException.BadRequest("the request body must be a JSON object");
    }

    private async Task WriteWithWarningsAsync(HttpContext ctx, int code, JsonObject obj, WriteOptions options)
    {
        foreach (var w in options.Warnings.Distinct())
        {
            ctx.Response.Headers.Append("Warning", $"299 - {JsonSerializer.Serialize(w)}");
        }
        await WriteJsonAsync(ctx, code, obj);
    }

    private async Task WriteObjectAsync(HttpContext ctx, int code, ResourceDefinition def, StoredObject stored)
    {
        var served = _service.ToServed(def, stored.Object);
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = "application/json";
        if (ReferenceEquals(served, stored.Object))
        {
            await ctx.Response.Body.WriteAsync(stored.Json, ctx.RequestAborted);
        }
        else
        {
            await ctx.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(served, Http.JsonWire.Options), ctx.RequestAborted);
        }
    }

    private async Task WriteListAsync(HttpContext ctx, ResourceDefinition def, ListResult result, bool asTable, string includeObject)
    {
        if (asTable)
        {
            var table = TableBuilder.Build(def, result.Items.Select(i => (i.Object, _service.ToServed(def, i.Object))), result.ResourceVersion, result.Continue, result.RemainingItemCount, includeObject);
            await WriteJsonAsync(ctx, 200, table);
            return;
        }
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(ctx.Response.BodyWriter, new JsonWriterOptions { Encoder = JsonWire.Options.Encoder, SkipValidation = true });
        writer.WriteStartObject();
        writer.WriteString("apiVersion", def.GroupVersion);
        writer.WriteString("kind", def.ListKind);
        writer.WriteStartObject("metadata");
        writer.WriteString("resourceVersion", result.ResourceVersion.ToString(CultureInfo.InvariantCulture));
        if (result.Continue is not null)
        {
            writer.WriteString("continue", result.Continue);
        }
        if (result.RemainingItemCount is { } remaining)
        {
            writer.WriteNumber("remainingItemCount", remaining);
        }
        writer.WriteEndObject();
        writer.WriteStartArray("items");
        foreach (var item in result.Items)
        {
            var served = _service.ToServed(def, item.Object);
            if (ReferenceEquals(served, item.Object))
            {
                writer.WriteRawValue(item.Json, skipInputValidation: true);
            }
            else
            {
                served.WriteTo(writer);
            }
            if (writer.BytesPending > 65536)
            {
                await writer.FlushAsync(ctx.RequestAborted);
            }
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(ctx.RequestAborted);
    }

    internal static async Task WriteJsonAsync(HttpContext ctx, int code, JsonNode node, string contentType = "application/json")
    {
        ctx.Response.StatusCode = code;
        ctx.Response.ContentType = contentType;
        await ctx.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(node, Http.JsonWire.Options), ctx.RequestAborted);
    }
}
