using System.Globalization;
using System.Text.Json.Nodes;
using Vmk.Operator.Apis.V1Alpha1;

namespace Vmk.Operator.Controllers.Common;

/// <summary>
/// Kubernetes-style conditions (type, status, reason, message, lastTransitionTime, observedGeneration): the time
/// moves only when the status flips, so an unchanged condition writes nothing new.
/// </summary>
public static class Conditions
{
    /// <summary>The conditions array of <paramref name="status"/> with <paramref name="type"/> set.</summary>
    public static JsonArray Set(JsonObject? status, string type, bool ok, string reason, string message, long? generation)
    {
        var existing = CustomObject.Array(status, "conditions").OfType<JsonObject>().Select(c => (JsonObject)c.DeepClone()).ToList();
        var previous = existing.FirstOrDefault(c => CustomObject.Str(c, "type") == type);
        var statusText = ok ? "True" : "False";
        var transition = previous is not null && CustomObject.Str(previous, "status") == statusText && CustomObject.Str(previous, "lastTransitionTime") is { } t
            ? t
            : DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        var condition = new JsonObject
        {
            ["type"] = type,
            ["status"] = statusText,
            ["reason"] = reason,
            ["message"] = message.Length > 32000 ? message[..32000] : message,
            ["lastTransitionTime"] = transition,
        };
        if (generation is { } g)
        {
            condition["observedGeneration"] = g;
        }
        existing.RemoveAll(c => CustomObject.Str(c, "type") == type);
        existing.Add(condition);
        return new JsonArray([.. existing.OrderBy(c => CustomObject.Str(c, "type"), StringComparer.Ordinal)]);
    }

    public static JsonObject? Get(JsonObject? status, string type) =>
        CustomObject.Array(status, "conditions").OfType<JsonObject>().FirstOrDefault(c => CustomObject.Str(c, "type") == type);
}
