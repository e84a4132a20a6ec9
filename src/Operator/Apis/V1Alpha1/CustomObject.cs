using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Vmk.Operator.Apis.V1Alpha1;

/// <summary>
/// A vmkernel.io/v1alpha1 object as the API server has it: typed metadata, spec and status kept as JSON. The CRD
/// schemas (crds/) are the source of truth and the API server applies their defaults, so the reconcilers read
/// the few fields they act on through the small accessors of each kind instead of a second copy of the schema.
/// </summary>
public abstract class CustomObject : IKubernetesObject<V1ObjectMeta>
{
    public const string Group = "vmkernel.io";
    public const string Version = "v1alpha1";

    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = Group + "/" + Version;

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = "";

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public JsonObject? Spec { get; set; }

    [JsonPropertyName("status")]
    public JsonObject? Status { get; set; }

    [JsonIgnore]
    public string Name => Metadata.Name;

    [JsonIgnore]
    public string? Namespace => string.IsNullOrEmpty(Metadata.NamespaceProperty) ? null : Metadata.NamespaceProperty;

    /// <summary>metadata.creationTimestamp as a point in time (the client gives an unspecified-kind UTC DateTime).</summary>
    [JsonIgnore]
    public DateTimeOffset? Created => Metadata.CreationTimestamp is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : null;

    /// <summary>A string at a path of dotted property names, e.g. <c>Str(Spec, "device", "path")</c>.</summary>
    public static string? Str(JsonNode? node, params string[] path)
    {
        var n = At(node, path);
        return n is JsonValue v && v.TryGetValue<string>(out var s) ? s : n?.ToString();
    }

    public static bool Bool(JsonNode? node, bool fallback, params string[] path)
    {
        var n = At(node, path);
        return n is JsonValue v && v.TryGetValue<bool>(out var b) ? b : fallback;
    }

    public static long? Long(JsonNode? node, params string[] path)
    {
        var n = At(node, path);
        if (n is JsonValue v)
        {
            if (v.TryGetValue<long>(out var l))
            {
                return l;
            }
            if (v.TryGetValue<double>(out var d))
            {
                return (long)d;
            }
        }
        return null;
    }

    /// <summary>A Kubernetes quantity (integer or string like 256Mi, 500m) in base units; millis for CPU with <paramref name="milli"/>.</summary>
    public static long? Quantity(JsonNode? node, bool milli, params string[] path)
    {
        var n = At(node, path);
        if (n is null)
        {
            return null;
        }
        var q = new ResourceQuantity(n.ToString());
        var value = q.ToDecimal();
        return (long)(milli ? value * 1000 : value);
    }

    public static JsonNode? At(JsonNode? node, params string[] path)
    {
        foreach (var p in path)
        {
            node = node is JsonObject o && o.TryGetPropertyValue(p, out var next) ? next : null;
        }
        return node;
    }

    public static JsonArray Array(JsonNode? node, params string[] path) => At(node, path) as JsonArray ?? [];
}
