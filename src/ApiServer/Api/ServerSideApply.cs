using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Schema;
using Vmk.ApiServer.Storage;

namespace Vmk.ApiServer.Api;

/// <summary>
/// Server-side apply, as far as <c>kubectl apply --server-side</c> needs it: the applied configuration creates the
/// object or is merged into it (maps merge, lists and scalars are replaced whole), and fields this field manager
/// applied before but no longer applies are removed. Ownership is recorded in metadata.managedFields (FieldsV1)
/// for Apply managers only; conflicts with other managers are not detected, so the last applier wins, as with
/// <c>--force-conflicts</c>.
/// </summary>
internal static class ServerSideApply
{
    public static JsonObject Apply(ObjectService service, ResourceDefinition def, string ns, string name, StoredObject? old, JsonNode? patch, bool statusOnly, WriteOptions options)
    {
        if (patch is not JsonObject applied)
        {
            throw ApiException.BadRequest("the applied configuration must be an object");
        }
        ObjectService.CheckShape(applied);
        if (string.IsNullOrEmpty(options.FieldManager))
        {
            throw ApiException.BadRequest("PATCH, application/apply-patch+yaml requires fieldManager to be set");
        }
        var appliedName = JsonKinds.GetString(applied["metadata"]?["name"]);
        if (appliedName is not null && appliedName != name)
        {
            throw ApiException.BadRequest($"the name of the object ({appliedName}) does not match the name on the URL ({name})");
        }
        var fields = FieldSet(applied, statusOnly);
        var entry = new JsonObject
        {
            ["manager"] = options.FieldManager,
            ["operation"] = "Apply",
            ["apiVersion"] = def.GroupVersion,
            ["time"] = ObjectService.Now(),
            ["fieldsType"] = "FieldsV1",
            ["fieldsV1"] = fields,
        };
        if (statusOnly)
        {
            entry["subresource"] = "status";
        }

        if (old is null)
        {
            if (statusOnly)
            {
                throw ApiException.NotFound(def.Plural, name, def.Group);
            }
            options.ManagedFields = [entry];
            var toCreate = (JsonObject)applied.DeepClone();
            if (toCreate["metadata"] is not JsonObject meta)
            {
                meta = new JsonObject();
                toCreate["metadata"] = meta;
            }
            meta["name"] = name;
            return service.Create(def, def.Namespaced ? ns : null, toCreate, options);
        }

        var live = service.ToServed(def, old.CloneObject());
        var managed = live["metadata"]?["managedFields"] as JsonArray ?? [];
        var previous = managed.OfType<JsonObject>().FirstOrDefault(m =>
            JsonKinds.GetString(m["manager"]) == options.FieldManager && JsonKinds.GetString(m["operation"]) == "Apply"
            && (JsonKinds.GetString(m["subresource"]) ?? "") == (statusOnly ? "status" : ""));
        if (previous?["fieldsV1"] is JsonObject previousFields)
        {
            RemoveDropped(live, previousFields, fields);
        }
        Merge(live, applied);
        var newManaged = new JsonArray();
        foreach (var m in managed)
        {
            if (!ReferenceEquals(m, previous))
            {
                newManaged.Add(m?.DeepClone());
            }
        }
        newManaged.Add(entry);
        options.ManagedFields = newManaged;
        if (live["metadata"] is JsonObject liveMeta)
        {
            // The applied config carries no resourceVersion precondition unless it says so.
            liveMeta["resourceVersion"] = applied["metadata"]?["resourceVersion"]?.DeepClone();
        }
        return service.UpdateFromPatch(def, old, live, statusOnly, options);
    }

    /// <summary>FieldsV1 of an applied configuration: <c>{"f:spec":{"f:x":{}}}</c>; lists are atomic leaves.</summary>
    private static JsonObject FieldSet(JsonObject applied, bool statusOnly)
    {
        var set = new JsonObject();
        foreach (var (key, value) in applied)
        {
            if (key is "apiVersion" or "kind")
            {
                continue;
            }
            if (key == "metadata" && value is JsonObject meta)
            {
                var m = new JsonObject();
                foreach (var mk in new[] { "labels", "annotations" })
                {
                    if (meta[mk] is JsonObject map)
                    {
                        m["f:" + mk] = Leaves(map);
                    }
                }
                if (meta["finalizers"] is JsonArray)
                {
                    m["f:finalizers"] = new JsonObject();
                }
                if (m.Count > 0)
                {
                    set["f:metadata"] = m;
                }
                continue;
            }
            if (statusOnly != (key == "status"))
            {
                continue;
            }
            set["f:" + key] = value is JsonObject o ? Leaves(o) : new JsonObject();
        }
        return set;
    }

    private static JsonObject Leaves(JsonObject obj)
    {
        var set = new JsonObject();
        foreach (var (key, value) in obj)
        {
            set["f:" + key] = value is JsonObject o && o.Count > 0 ? Leaves(o) : new JsonObject();
        }
        return set;
    }

    private static void RemoveDropped(JsonObject live, JsonObject previous, JsonObject current)
    {
        foreach (var (key, prevChild) in previous)
        {
            if (!key.StartsWith("f:", StringComparison.Ordinal))
            {
                continue;
            }
            var field = key[2..];
            if (current[key] is not JsonObject curChild)
            {
                live.Remove(field);
                continue;
            }
            if (prevChild is JsonObject { Count: > 0 } prevObj && live[field] is JsonObject liveChild)
            {
                RemoveDropped(liveChild, prevObj, curChild);
            }
        }
    }

    private static void Merge(JsonObject live, JsonObject applied)
    {
        foreach (var (key, value) in applied)
        {
            if (value is JsonObject appliedChild && live[key] is JsonObject liveChild)
            {
                Merge(liveChild, appliedChild);
            }
            else
            {
                live[key] = value?.DeepClone();
            }
        }
    }
}
