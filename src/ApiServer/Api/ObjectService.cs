using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Patching;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Schema;
using Vmk.ApiServer.Storage;

namespace Vmk.ApiServer.Api;

/// <summary>
/// kube-apiserver's object semantics over the <see cref="ObjectStore"/>: system metadata (uid, creationTimestamp,
/// generation bumped on spec changes only, resourceVersion preconditions), schema pruning/defaulting/validation,
/// the status subresource, finalizers and deletionTimestamp, patches and namespace existence.
/// Objects enter and leave in the served form of the given <see cref="ResourceDefinition"/>.
/// </summary>
public sealed class ObjectService
{
    private const string NameChars = "bcdfghjklmnpqrstvwxz2456789";

    private readonly ObjectStore _store;
    private readonly ResourceRegistry _registry;
    private readonly ILogger _logger;

    public ObjectService(ObjectStore store, ResourceRegistry registry, ILogger logger)
    {
        _store = store;
        _registry = registry;
        _logger = logger;
    }

    /// <summary>Raised after a commit that may leave garbage (a delete, or a write carrying ownerReferences).</summary>
    public event Action? GarbageMayExist;

    /// <summary>Raised after a CustomResourceDefinition is committed or removed.</summary>
    public event Action<JsonObject, bool>? CrdChanged;

    public ObjectStore Store => _store;

    public static string Now() => DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// The object as <paramref name="def"/>'s API version shows it: converted (events.k8s.io), relabelled (another
    /// served version of a CRD: conversion strategy None), or the stored instance itself (callers then write its
    /// cached bytes).
    /// </summary>
    public JsonObject ToServed(ResourceDefinition def, JsonObject stored)
    {
        if (def.Converter is not null)
        {
            return def.Converter.FromStorage(stored);
        }
        if (JsonKinds.GetString(stored["apiVersion"]) == def.GroupVersion)
        {
            return stored;
        }
        var relabelled = (JsonObject)stored.DeepClone();
        relabelled["apiVersion"] = def.GroupVersion;
        return relabelled;
    }

    public StoredObject Get(ResourceDefinition def, string ns, string name)
        => _store.Get(def.StorageResource, ns, name) ?? throw ApiException.NotFound(def.Plural, name, def.Group);

    public ListResult List(ResourceDefinition def, string? ns, ListOptions options)
    {
        string? afterKey = null;
        if (!string.IsNullOrEmpty(options.Continue))
        {
            afterKey = DecodeContinue(options.Continue);
        }
        var (all, rv) = _store.List(def.StorageResource, ns, afterKey);
        var items = new List<StoredObject>();
        string? next = null;
        long? remaining = null;
        for (var i = 0; i < all.Count; i++)
        {
            var o = all[i];
            if (!Matches(o.Object, options))
            {
                continue;
            }
            if (options.Limit > 0 && items.Count == options.Limit)
            {
                next = EncodeContinue(items[^1].Key, rv);
                remaining = all.Skip(i).LongCount(x => Matches(x.Object, options));
                break;
            }
            items.Add(o);
        }
        return new ListResult(items, rv, next, remaining);
    }

    private static bool Matches(JsonObject o, ListOptions options)
        => (options.Labels?.Matches(o) ?? true) && (options.Fields?.Matches(o) ?? true);

    private static string EncodeContinue(string key, long rv)
    {
        var json = JsonSerializer.Serialize(new Dictionary<string, object> { ["v"] = "meta.k8s.io/v1", ["rv"] = rv, ["start"] = key });
        return Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private static string DecodeContinue(string token)
    {
        try
        {
            var b64 = token.Replace('-', '+').Replace('_', '/');
            b64 = b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
            var node = JsonNode.Parse(Convert.FromBase64String(b64));
            return JsonKinds.GetString(node?["start"]) ?? throw new FormatException("no start key");
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException)
        {
            throw ApiException.BadRequest("continue key is not valid: " + e.Message);
        }
    }

    public JsonObject Create(ResourceDefinition def, string? ns, JsonObject body, WriteOptions options)
    {
        CheckTypeMeta(def, body);
        var obj = def.Converter is null ? (JsonObject)body.DeepClone() : def.Converter.ToStorage(body);
        var meta = obj["metadata"] as JsonObject;
        if (meta is null)
        {
            meta = new JsonObject();
            obj["metadata"] = meta;
        }
        CheckNamespace(def, ns, meta);
        var generateName = JsonKinds.GetString(meta["generateName"]);
        var name = JsonKinds.GetString(meta["name"]);
        if (string.IsNullOrEmpty(name) && string.IsNullOrEmpty(generateName))
        {
            throw ApiException.Invalid(def.Kind, def.Group, "", [FieldError.Required("metadata.name", "name or generateName is required")]);
        }

        lock (_store.Gate)
        {
            if (def.Namespaced)
            {
                var nsObj = _store.Get("/namespaces", "", ns!) ?? throw ApiException.NotFound("namespaces", ns!);
                if (nsObj.Object["metadata"]?["deletionTimestamp"] is not null)
                {
                    throw ApiException.Forbidden($"{def.Plural}{(def.Group.Length > 0 ? "." + def.Group : "")} \"{name ?? generateName}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated");
                }
            }
            if (string.IsNullOrEmpty(name))
            {
                name = GenerateName(def, ns ?? "", generateName!);
                meta["name"] = name;
            }
            if (_store.Get(def.StorageResource, ns ?? "", name) is not null)
            {
                throw ApiException.AlreadyExists(def.Plural, def.Group, name);
            }

            meta["uid"] = Guid.NewGuid().ToString();
            meta["creationTimestamp"] = Now();
            meta.Remove("resourceVersion");
            meta.Remove("deletionTimestamp");
            meta.Remove("deletionGracePeriodSeconds");
            meta.Remove("managedFields");
            meta.Remove("selfLink");
            if (options.ManagedFields is { } managed)
            {
                meta["managedFields"] = managed.DeepClone();
            }
            if (def.HasGeneration)
            {
                meta["generation"] = 1L;
            }
            else
            {
                meta.Remove("generation");
            }
            if (def.StatusSubresource && def.IsCustom)
            {
                // kube-apiserver ignores status on create when the status subresource is on.
                obj.Remove("status");
            }
            Admit(def, obj, null, options);
            if (options.DryRun)
            {
                return ToServed(def, obj);
            }
            var stored = _store.Put(def.StorageResource, obj, null);
            AfterCommit(def, stored, null);
            return ToServed(def, stored.CloneObject());
        }
    }

    private string GenerateName(ResourceDefinition def, string ns, string prefix)
    {
        for (var attempt = 0; attempt < 8; attempt++)
        {
            var suffix = string.Create(5, 0, (span, _) =>
            {
                for (var i = 0; i < span.Length; i++)
                {
                    span[i] = NameChars[Random.Shared.Next(NameChars.Length)];
                }
            });
            var candidate = prefix + suffix;
            if (_store.Get(def.StorageResource, ns, candidate) is null)
            {
                return candidate;
            }
        }
        throw ApiException.AlreadyExists(def.Plural, def.Group, prefix + "*");
    }

    /// <summary>PUT of the object (or of its status subresource).</summary>
    public JsonObject Update(ResourceDefinition def, string ns, string name, JsonObject body, bool statusOnly, WriteOptions options)
    {
        CheckTypeMeta(def, body);
        var incoming = def.Converter is null ? (JsonObject)body.DeepClone() : def.Converter.ToStorage(body);
        var bodyName = JsonKinds.GetString(incoming["metadata"]?["name"]);
        if (bodyName is not null && bodyName != name)
        {
            throw ApiException.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({name})");
        }
        lock (_store.Gate)
        {
            var old = Get(def, ns, name);
            var rv = JsonKinds.GetString(incoming["metadata"]?["resourceVersion"]);
            if (string.IsNullOrEmpty(rv))
            {
                if (!def.AllowUnconditionalUpdate)
                {
                    throw ApiException.Invalid(def.Kind, def.Group, name, [FieldError.Invalid("metadata.resourceVersion", JsonValue.Create("0x0"), "must be specified for an update")]);
                }
            }
            else if (rv != old.ResourceVersion.ToString(CultureInfo.InvariantCulture))
            {
                throw ApiException.Conflict(def.Plural, def.Group, name, "the object has been modified; please apply your changes to the latest version and try again");
            }
            return CommitUpdate(def, old, incoming, statusOnly, options);
        }
    }

    /// <summary>PATCH: applied to the current object under the store lock, so it never races another writer.</summary>
    public JsonObject Patch(ResourceDefinition def, string ns, string name, string contentType, JsonNode? patch, bool statusOnly, WriteOptions options)
    {
        lock (_store.Gate)
        {
            if (contentType == PatchTypes.Strategic && def.IsCustom)
            {
                throw ApiException.UnsupportedMediaType(
                    $"the body of the request was in an unknown format - accepted media types include: {PatchTypes.Json}, {PatchTypes.Merge}, {PatchTypes.Apply}");
            }
            var old = _store.Get(def.StorageResource, ns, name);
            if (contentType == PatchTypes.Apply)
            {
                return ServerSideApply.Apply(this, def, ns, name, old, patch, statusOnly, options);
            }
            if (old is null)
            {
                throw ApiException.NotFound(def.Plural, name, def.Group);
            }
            var current = ToServed(def, old.CloneObject());
            var patched = contentType switch
            {
                PatchTypes.Merge => MergePatch.Apply(current, patch),
                PatchTypes.Json => JsonPatch.Apply(current, patch),
                PatchTypes.Strategic when !def.IsCustom => StrategicMergePatch.Apply(current, patch),
                PatchTypes.Strategic => throw ApiException.UnsupportedMediaType(
                    $"the body of the request was in an unknown format - accepted media types include: {PatchTypes.Json}, {PatchTypes.Merge}, {PatchTypes.Apply}"),
                _ => throw ApiException.UnsupportedMediaType($"the body of the request was in an unknown format - accepted media types include: {PatchTypes.Json}, {PatchTypes.Merge}, {PatchTypes.Apply}, {PatchTypes.Strategic}"),
            };
            if (patched is not JsonObject patchedObj)
            {
                throw ApiException.BadRequest("the patch result is not a JSON object");
            }
            return UpdateFromPatch(def, old, patchedObj, statusOnly, options);
        }
    }

    /// <summary>Completes a patch: the patched object's resourceVersion, if the patch set one, is a precondition.
    /// Caller holds the store lock.</summary>
    internal JsonObject UpdateFromPatch(ResourceDefinition def, StoredObject old, JsonObject patched, bool statusOnly, WriteOptions options)
    {
        CheckTypeMeta(def, patched);
        var incoming = def.Converter is null ? patched : def.Converter.ToStorage(patched);
        var rv = JsonKinds.GetString(incoming["metadata"]?["resourceVersion"]);
        if (!string.IsNullOrEmpty(rv) && rv != old.ResourceVersion.ToString(CultureInfo.InvariantCulture))
        {
            throw ApiException.Conflict(def.Plural, def.Group, old.Name, "the object has been modified; please apply your changes to the latest version and try again");
        }
        if (JsonKinds.GetString(incoming["metadata"]?["name"]) is { } n && n != old.Name)
        {
            throw ApiException.BadRequest($"the name of the object ({n}) does not match the name on the URL ({old.Name})");
        }
        return CommitUpdate(def, old, incoming, statusOnly, options);
    }

    /// <summary>Internal writes (garbage collector, CRD status): read-modify-write of the stored form.</summary>
    public bool Mutate(ResourceDefinition def, string ns, string name, Func<JsonObject, bool> change, bool statusOnly = false)
    {
        lock (_store.Gate)
        {
            var old = _store.Get(def.StorageResource, ns, name);
            if (old is null)
            {
                return false;
            }
            var obj = old.CloneObject();
            if (!change(obj))
            {
                return false;
            }
            CommitUpdate(def, old, obj, statusOnly, new WriteOptions(FieldValidation: FieldValidation.Ignore));
            return true;
        }
    }

    private JsonObject CommitUpdate(ResourceDefinition def, StoredObject old, JsonObject incoming, bool statusOnly, WriteOptions options)
    {
        var oldObj = old.Object;
        JsonObject obj;
        if (statusOnly)
        {
            // The status endpoint changes status only (and nothing of metadata or spec).
            obj = old.CloneObject();
            if (incoming["status"] is { } status)
            {
                obj["status"] = status.DeepClone();
            }
            else
            {
                obj.Remove("status");
            }
        }
        else
        {
            obj = incoming;
            if (def.StatusSubresource)
            {
                if (oldObj["status"] is { } oldStatus)
                {
                    obj["status"] = oldStatus.DeepClone();
                }
                else
                {
                    obj.Remove("status");
                }
            }
        }

        var meta = obj["metadata"] as JsonObject;
        if (meta is null)
        {
            meta = new JsonObject();
            obj["metadata"] = meta;
        }
        var oldMeta = (JsonObject)oldObj["metadata"]!;
        foreach (var key in new[] { "name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "managedFields" })
        {
            if (oldMeta[key] is { } v)
            {
                meta[key] = v.DeepClone();
            }
            else
            {
                meta.Remove(key);
            }
        }
        if (options.ManagedFields is { } managed)
        {
            meta["managedFields"] = managed.DeepClone();
        }
        meta["resourceVersion"] = old.ResourceVersion.ToString(CultureInfo.InvariantCulture);
        obj["apiVersion"] = oldObj["apiVersion"]?.DeepClone();
        obj["kind"] = oldObj["kind"]?.DeepClone();

        if (oldMeta["deletionTimestamp"] is not null)
        {
            var before = Finalizers(oldObj).ToHashSet(StringComparer.Ordinal);
            var added = Finalizers(obj).Where(f => !before.Contains(f)).ToList();
            if (added.Count > 0)
            {
                throw ApiException.Invalid(def.Kind, def.Group, old.Name,
                    [FieldError.Forbidden("metadata.finalizers", $"no new finalizers can be added if the object is being deleted, found new finalizers []string{{{string.Join(", ", added.Select(a => JsonSerializer.Serialize(a)))}}}")]);
            }
        }

        Admit(def, obj, oldObj, options);

        if (def.HasGeneration && SpecChanged(def, oldObj, obj))
        {
            meta["generation"] = (JsonKinds.GetLong(oldMeta["generation"]) ?? 0) + 1;
        }

        if (JsonNode.DeepEquals(obj, oldObj))
        {
            return ToServed(def, old.CloneObject());
        }
        if (options.DryRun)
        {
            return ToServed(def, obj);
        }

        if (meta["deletionTimestamp"] is not null && !HasAnyFinalizer(def, obj))
        {
            var gone = _store.Remove(old, obj);
            AfterCommit(def, null, gone);
            return ToServed(def, gone.CloneObject());
        }

        var stored = _store.Put(def.StorageResource, obj, old);
        AfterCommit(def, stored, null);
        return ToServed(def, stored.CloneObject());
    }

    /// <summary>Everything but metadata (and status, when it has its own endpoint) counts as spec for generation.</summary>
    private static bool SpecChanged(ResourceDefinition def, JsonObject oldObj, JsonObject newObj)
    {
        var keys = oldObj.Select(p => p.Key).Concat(newObj.Select(p => p.Key)).Distinct(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            if (key is "metadata" or "apiVersion" or "kind" || (key == "status" && (def.StatusSubresource || !def.IsCustom)))
            {
                continue;
            }
            if (!JsonNode.DeepEquals(oldObj[key], newObj[key]))
            {
                return true;
            }
        }
        return false;
    }

    public DeleteResult Delete(ResourceDefinition def, string ns, string name, DeleteOptions options)
    {
        lock (_store.Gate)
        {
            var old = Get(def, ns, name);
            if (options.PreconditionUid is { Length: > 0 } uid && uid != old.Uid)
            {
                throw ApiException.Conflict(def.Plural, def.Group, name, $"Precondition failed: UID in precondition: {uid}, UID in object meta: {old.Uid}");
            }
            if (options.PreconditionResourceVersion is { Length: > 0 } prv && prv != old.ResourceVersion.ToString(CultureInfo.InvariantCulture))
            {
                throw ApiException.Conflict(def.Plural, def.Group, name, $"Precondition failed: ResourceVersion in precondition: {prv}, ResourceVersion in object meta: {old.ResourceVersion}");
            }
            var obj = old.CloneObject();
            var meta = (JsonObject)obj["metadata"]!;
            var finalizers = Finalizers(obj).ToList();
            switch (options.PropagationPolicy)
            {
                case "Orphan" when !finalizers.Contains("orphan"):
                    finalizers.Add("orphan");
                    break;
                case "Foreground" when !finalizers.Contains("foregroundDeletion"):
                    finalizers.Add("foregroundDeletion");
                    break;
            }
            if (finalizers.Count > 0)
            {
                meta["finalizers"] = new JsonArray(finalizers.Select(f => (JsonNode)JsonValue.Create(f)).ToArray());
            }

            if (finalizers.Count > 0 || HasAnyFinalizer(def, obj))
            {
                if (meta["deletionTimestamp"] is null)
                {
                    meta["deletionTimestamp"] = Now();
                    meta["deletionGracePeriodSeconds"] = 0L;
                }
                if (def.Kind == "Namespace" && def.Group.Length == 0 && obj["status"] is JsonObject status)
                {
                    status["phase"] = "Terminating";
                }
                if (JsonNode.DeepEquals(obj, old.Object) || options.DryRun)
                {
                    return new DeleteResult(ToServed(def, obj), false);
                }
                var stored = _store.Put(def.StorageResource, obj, old);
                AfterCommit(def, stored, null);
                return new DeleteResult(ToServed(def, stored.CloneObject()), false);
            }

            if (options.DryRun)
            {
                return new DeleteResult(ToServed(def, obj), true);
            }
            var gone = _store.Remove(old, obj);
            AfterCommit(def, null, gone);
            return new DeleteResult(ToServed(def, gone.CloneObject()), true);
        }
    }

    public static IEnumerable<string> Finalizers(JsonObject obj)
        => (obj["metadata"]?["finalizers"] as JsonArray)?.Select(f => JsonKinds.GetString(f)).OfType<string>() ?? [];

    /// <summary>metadata.finalizers, plus a Namespace's spec.finalizers ("kubernetes" until its content is gone).</summary>
    private static bool HasAnyFinalizer(ResourceDefinition def, JsonObject obj)
        => Finalizers(obj).Any() || (def.Kind == "Namespace" && def.Group.Length == 0 && obj["spec"]?["finalizers"] is JsonArray { Count: > 0 });

    private void AfterCommit(ResourceDefinition def, StoredObject? stored, StoredObject? gone)
    {
        if (def.Group == "apiextensions.k8s.io" && def.Kind == "CustomResourceDefinition")
        {
            CrdChanged?.Invoke((stored ?? gone)!.Object, gone is not null);
        }
        if (gone is not null || stored?.Object["metadata"]?["ownerReferences"] is JsonArray { Count: > 0 }
            || stored?.Object["metadata"]?["deletionTimestamp"] is not null)
        {
            GarbageMayExist?.Invoke();
        }
    }

    /// <summary>The shape every object must have before any field is read: kube's decoder rejects the rest (400).</summary>
    internal static void CheckShape(JsonObject body)
    {
        foreach (var key in new[] { "apiVersion", "kind" })
        {
            if (body[key] is { } v && JsonKinds.GetString(v) is null)
            {
                throw ApiException.BadRequest($"{key} must be a string, not {JsonKinds.TypeName(v)}");
            }
        }
        if (body["metadata"] is null)
        {
            return;
        }
        if (body["metadata"] is not JsonObject meta)
        {
            throw ApiException.BadRequest($"metadata must be an object, not {JsonKinds.TypeName(body["metadata"])}");
        }
        foreach (var key in new[] { "name", "generateName", "namespace", "resourceVersion", "uid" })
        {
            if (meta[key] is { } v && JsonKinds.GetString(v) is null)
            {
                throw ApiException.BadRequest($"metadata.{key} must be a string, not {JsonKinds.TypeName(v)}");
            }
        }
    }

    private static void CheckTypeMeta(ResourceDefinition def, JsonObject body)
    {
        CheckShape(body);
        // Like kube-apiserver's decoder, a body without apiVersion/kind takes them from the URL.
        if (body["kind"] is null && body["apiVersion"] is null)
        {
            body["apiVersion"] = def.GroupVersion;
            body["kind"] = def.Kind;
        }
        var apiVersion = JsonKinds.GetString(body["apiVersion"]);
        var kind = JsonKinds.GetString(body["kind"]);
        if (string.IsNullOrEmpty(kind))
        {
            throw ApiException.BadRequest("Object 'Kind' is missing in '" + Truncate(body.ToJsonString()) + "'");
        }
        if (kind != def.Kind || (apiVersion is not null && apiVersion != def.GroupVersion))
        {
            throw ApiException.BadRequest($"the API version in the data ({apiVersion}) does not match the expected API version ({def.GroupVersion}) or the kind ({kind}) is not {def.Kind}");
        }
    }

    private static string Truncate(string s) => s.Length > 200 ? s[..200] + "..." : s;

    private static void CheckNamespace(ResourceDefinition def, string? ns, JsonObject meta)
    {
        var bodyNs = JsonKinds.GetString(meta["namespace"]);
        if (!def.Namespaced)
        {
            meta.Remove("namespace");
            return;
        }
        if (!string.IsNullOrEmpty(bodyNs) && bodyNs != ns)
        {
            throw ApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        }
        meta["namespace"] = ns;
    }

    /// <summary>Name rules, schema (prune, default, validate) and type-specific checks; 422 naming every field.</summary>
    private void Admit(ResourceDefinition def, JsonObject obj, JsonObject? old, WriteOptions options)
    {
        var errors = new List<FieldError>();
        var meta = (JsonObject)obj["metadata"]!;
        var name = JsonKinds.GetString(meta["name"]) ?? "";
        if (old is null)
        {
            errors.AddRange(CheckName(def, name));
        }
        errors.AddRange(CheckMetadata(meta));

        if (def.Schema is { } schema)
        {
            var result = SchemaValidator.Run(obj, schema);
            if (result.UnknownFields.Count > 0)
            {
                switch (options.FieldValidation)
                {
                    case FieldValidation.Strict:
                        var unknown = string.Join(", ", result.UnknownFields.Select(f => $"unknown field \"{f}\""));
                        throw ApiException.BadRequest($"{def.Kind} in version \"{def.Version}\" cannot be handled as a {def.Kind}: strict decoding error: {unknown}");
                    case FieldValidation.Warn:
                        options.Warnings.AddRange(result.UnknownFields.Select(f => $"unknown field \"{f}\""));
                        break;
                }
            }
            errors.AddRange(result.Errors);
        }
        if (def.ValidateBuiltin is { } validate)
        {
            errors.AddRange(validate(obj, old));
        }
        if (errors.Count > 0)
        {
            throw ApiException.Invalid(def.Kind, def.Group, name, errors);
        }
    }

    private static IEnumerable<FieldError> CheckName(ResourceDefinition def, string name)
    {
        if (def.Kind == "Event" && def.Group.Length == 0 || def.Converter is not null)
        {
            if (name.Contains('/', StringComparison.Ordinal) || name.Contains('%', StringComparison.Ordinal) || name is "." or "..")
            {
                yield return FieldError.Invalid("metadata.name", JsonValue.Create(name), "may not contain '/' or '%' and may not be '.' or '..'");
            }
            yield break;
        }
        if (name.Length > 253 || !CrdDefinitions.DnsSubdomain().IsMatch(name))
        {
            yield return FieldError.Invalid("metadata.name", JsonValue.Create(name),
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
        }
    }

    private static IEnumerable<FieldError> CheckMetadata(JsonObject meta)
    {
        foreach (var field in new[] { "labels", "annotations" })
        {
            if (meta[field] is null)
            {
                continue;
            }
            if (meta[field] is not JsonObject map)
            {
                yield return FieldError.Invalid($"metadata.{field}", meta[field], "must be a map of strings");
                continue;
            }
            foreach (var (k, v) in map)
            {
                if (JsonKinds.GetString(v) is null)
                {
                    yield return FieldError.Invalid($"metadata.{field}", v, $"value of {k} must be a string");
                }
            }
        }
        if (meta["finalizers"] is { } fin && (fin is not JsonArray arr || arr.Any(f => JsonKinds.GetString(f) is null)))
        {
            yield return FieldError.Invalid("metadata.finalizers", fin, "must be a list of strings");
        }
        if (meta["ownerReferences"] is { } refs)
        {
            if (refs is not JsonArray refArr)
            {
                yield return FieldError.Invalid("metadata.ownerReferences", refs, "must be a list");
                yield break;
            }
            for (var i = 0; i < refArr.Count; i++)
            {
                foreach (var required in new[] { "apiVersion", "kind", "name", "uid" })
                {
                    if (string.IsNullOrEmpty(JsonKinds.GetString(refArr[i]?[required])))
                    {
                        yield return FieldError.Required($"metadata.ownerReferences[{i}].{required}");
                    }
                }
            }
        }
    }

    internal ILogger Logger => _logger;

    internal ResourceRegistry Registry => _registry;
}
