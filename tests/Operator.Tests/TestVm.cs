using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Vmk.Operator.Tests;

/// <summary>A VirtualMachine (the project's CRD) with untyped spec and status: the runtime is generic over the type.</summary>
public sealed class TestVm : IKubernetesObject<V1ObjectMeta>
{
    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; } = "vmkernel.io/v1alpha1";

    [JsonPropertyName("kind")]
    public string Kind { get; set; } = "VirtualMachine";

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public JsonObject? Spec { get; set; }

    [JsonPropertyName("status")]
    public JsonObject? Status { get; set; }

    public string? Memory => Spec?["memory"]?["size"]?.GetValue<string>();
}
