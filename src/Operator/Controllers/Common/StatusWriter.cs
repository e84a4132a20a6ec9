using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Vmk.Operator.Apis.V1Alpha1;

namespace Vmk.Operator.Controllers.Common;

/// <summary>
/// Writes a status through the status subresource, and only when it differs from what the cache holds: an
/// unchanged status costs no request and no watch event, which keeps idle objects idle.
/// </summary>
public sealed class StatusWriter(IKubernetes client)
{
    /// <summary>Merge-patches <paramref name="status"/> (whole top-level fields: arrays are replaced); returns the object as written, or the input when nothing changed.</summary>
    public async Task<T> PatchAsync<T>(T obj, string plural, JsonObject status, CancellationToken ct)
        where T : CustomObject
    {
        var current = obj.Status ?? [];
        var changed = status.Where(kv => !JsonNode.DeepEquals(kv.Value, current[kv.Key])).Select(kv => kv.Key).ToList();
        if (changed.Count == 0)
        {
            return obj;
        }
        var patch = new JsonObject { ["status"] = new JsonObject(changed.Select(k => KeyValuePair.Create(k, status[k]?.DeepClone()))) };
        var body = new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch);
        return obj.Namespace is { } ns
            ? await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync<T>(body, CustomObject.Group, CustomObject.Version, ns, plural, obj.Name, cancellationToken: ct).ConfigureAwait(false)
            : await client.CustomObjects.PatchClusterCustomObjectStatusAsync<T>(body, CustomObject.Group, CustomObject.Version, plural, obj.Name, cancellationToken: ct).ConfigureAwait(false);
    }
}
