using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Tests;

/// <summary>VirtualMachine objects on the real server through KubernetesClient's custom-object calls.</summary>
internal static class Vms
{
    public const string Group = "vmkernel.io";
    public const string Version = "v1alpha1";
    public const string Plural = "virtualmachines";

    public static CustomResourceApi<TestVm> Api(IKubernetes client, string ns) => new(client, Group, Version, Plural, ns);

    public static async Task<TestVm> CreateAsync(IKubernetes client, string ns, string name, string memory = "256Mi")
    {
        var manifest = new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "VirtualMachine",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = new JsonObject { ["memory"] = new JsonObject { ["size"] = memory } },
        };
        return await client.CustomObjects.CreateNamespacedCustomObjectAsync<TestVm>(manifest, Group, Version, ns, Plural);
    }

    /// <summary>A spec change: bumps metadata.generation.</summary>
    public static Task<TestVm> SetMemoryAsync(IKubernetes client, string ns, string name, string memory)
        => client.CustomObjects.PatchNamespacedCustomObjectAsync<TestVm>(
            new V1Patch(JsonSerializer.Serialize(new { spec = new { memory = new { size = memory } } }), V1Patch.PatchType.MergePatch),
            Group, Version, ns, Plural, name);

    /// <summary>A status-only change through the status subresource: generation stays.</summary>
    public static Task<TestVm> SetStatusAsync(IKubernetes client, string ns, string name, long observedGeneration)
        => client.CustomObjects.PatchNamespacedCustomObjectStatusAsync<TestVm>(
            new V1Patch(JsonSerializer.Serialize(new { status = new { phase = "Running", observedGeneration } }), V1Patch.PatchType.MergePatch),
            Group, Version, ns, Plural, name);

    public static Task DeleteAsync(IKubernetes client, string ns, string name)
        => client.CustomObjects.DeleteNamespacedCustomObjectAsync(Group, Version, ns, Plural, name);

    public static async Task<TestVm?> TryGetAsync(IKubernetes client, string ns, string name)
    {
        try
        {
            return await client.CustomObjects.GetNamespacedCustomObjectAsync<TestVm>(Group, Version, ns, Plural, name);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }
}
