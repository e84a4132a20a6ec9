using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Informer;

/// <summary>A list response of any resource (<c>kind: XList</c>) deserialized into typed items.</summary>
public sealed class ResourceList<T> : IKubernetesObject<V1ListMeta>, IItems<T>
    where T : IKubernetesObject<V1ObjectMeta>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = "";

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = "";

    [JsonPropertyName("metadata")]
    public V1ListMeta Metadata { get; set; } = new();

    [JsonPropertyName("items")]
    public IList<T> Items { get; set; } = [];
}
