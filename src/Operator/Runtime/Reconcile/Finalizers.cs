using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// Adds and removes one named finalizer with a JSON patch that names exactly what it changes: appending to the
/// list, or removing the entry at an index after testing it still holds that name. Two writers touching the
/// finalizer list therefore never silently undo each other; a lost race is a 409/422 error and the reconcile is
/// retried from the cache.
/// </summary>
public static class Finalizers
{
    public static bool Has(IKubernetesObject<V1ObjectMeta> obj, string name)
    {
        ArgumentNullException.ThrowIfNull(obj);
        return obj.Metadata.Finalizers?.Contains(name) == true;
    }

    public static bool IsBeingDeleted(IKubernetesObject<V1ObjectMeta> obj)
    {
        ArgumentNullException.ThrowIfNull(obj);
        return obj.Metadata.DeletionTimestamp is not null;
    }

    /// <summary>Adds <paramref name="name"/> unless present; returns the object as the server has it afterwards.</summary>
    public static async Task<T> AddAsync<T>(IResourceApi<T> api, T obj, string name, CancellationToken ct)
        where T : class, IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (Has(obj, name))
        {
            return obj;
        }
        JsonArray ops = obj.Metadata.Finalizers is { Count: > 0 }
            ? [Op("add", "/metadata/finalizers/-", JsonValue.Create(name))]
            // Creating the list replaces whatever is there: only if nobody changed the object since we read it.
            : [Op("test", "/metadata/resourceVersion", JsonValue.Create(obj.Metadata.ResourceVersion)), Op("add", "/metadata/finalizers", new JsonArray(JsonValue.Create(name)))];
        return await api.PatchAsync(ObjectKey.Of(obj), new V1Patch(ops.ToJsonString(), V1Patch.PatchType.JsonPatch), ct).ConfigureAwait(false);
    }

    /// <summary>Removes <paramref name="name"/> if present; returns the object as the server has it afterwards.</summary>
    public static async Task<T> RemoveAsync<T>(IResourceApi<T> api, T obj, string name, CancellationToken ct)
        where T : class, IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var index = obj.Metadata.Finalizers?.IndexOf(name) ?? -1;
        if (index < 0)
        {
            return obj;
        }
        var path = "/metadata/finalizers/" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);
        JsonArray ops = [Op("test", path, JsonValue.Create(name)), Op("remove", path, null)];
        return await api.PatchAsync(ObjectKey.Of(obj), new V1Patch(ops.ToJsonString(), V1Patch.PatchType.JsonPatch), ct).ConfigureAwait(false);
    }

    private static JsonObject Op(string op, string path, JsonNode? value)
    {
        var o = new JsonObject { ["op"] = op, ["path"] = path };
        if (op != "remove")
        {
            o["value"] = value;
        }
        return o;
    }
}
