using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Vmk.ApiServer.Tests;

/// <summary>VirtualMachine custom objects through KubernetesClient's generic custom-object API.</summary>
internal static class Vms
{
    public const string Group = "vmkernel.io";
    public const string Version = "v1alpha1";
    public const string Plural = "virtualmachines";

    public static JsonObject Manifest(string name, string memory = "256Mi", IDictionary<string, string>? labels = null)
    {
        var meta = new JsonObject { ["name"] = name };
        if (labels is not null)
        {
            var l = new JsonObject();
            foreach (var (k, v) in labels)
            {
                l[k] = v;
            }
            meta["labels"] = l;
        }
        return new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "VirtualMachine",
            ["metadata"] = meta,
            ["spec"] = new JsonObject { ["memory"] = new JsonObject { ["size"] = memory } },
        };
    }

    public static JsonObject ToNode(object result) => JsonSerializer.SerializeToNode(result)!.AsObject();

    public static async Task<JsonObject> CreateAsync(Kubernetes client, string ns, JsonObject manifest)
        => ToNode(await client.CustomObjects.CreateNamespacedCustomObjectAsync(manifest, Group, Version, ns, Plural));

    public static async Task<JsonObject> GetAsync(Kubernetes client, string ns, string name)
        => ToNode(await client.CustomObjects.GetNamespacedCustomObjectAsync(Group, Version, ns, Plural, name));

    public static async Task<string> NewNamespaceAsync(Kubernetes client)
    {
        var ns = "c-" + Guid.NewGuid().ToString("N")[..8];
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } });
        return ns;
    }

    public static string Rv(JsonObject o) => o["metadata"]!["resourceVersion"]!.GetValue<string>();

    public static long Generation(JsonObject o) => o["metadata"]!["generation"]!.GetValue<long>();
}
