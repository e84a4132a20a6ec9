using System.Globalization;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Vmk.ApiServer.Tests;

/// <summary>A restart keeps every object and the resourceVersion sequence, and the kubeconfig stays valid.</summary>
public sealed class PersistenceTests
{
    [Fact]
    public async Task Restart_keeps_objects_uids_and_the_resource_version_sequence()
    {
        var dir = TestServer.NewDataDirectory();
        try
        {
            string uid;
            string lastRv;
            string kubeconfig;
            await using (var first = await TestServer.StartAsync(dir, durable: true))
            {
                using var client = first.Client();
                var ns = "persist";
                await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } });
                var vm = await Vms.CreateAsync(client, ns, Vms.Manifest("keeper", "2Gi"));
                uid = vm["metadata"]!["uid"]!.GetValue<string>();
                await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(new V1Patch("{\"status\":{\"phase\":\"Running\"}}", V1Patch.PatchType.MergePatch), Vms.Group, Vms.Version, ns, Vms.Plural, "keeper");
                await client.CoreV1.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = "s" }, StringData = new Dictionary<string, string> { ["k"] = "v" } }, ns);
                await Vms.CreateAsync(client, ns, Vms.Manifest("doomed"));
                var deleted = Vms.ToNode(await client.CustomObjects.DeleteNamespacedCustomObjectAsync(Vms.Group, Vms.Version, ns, Vms.Plural, "doomed"));
                lastRv = Vms.Rv(deleted);
                kubeconfig = File.ReadAllText(first.Kubeconfig);
            }

            await using var second = await TestServer.StartAsync(dir, durable: true);
            using var again = second.Client();
            var kept = await Vms.GetAsync(again, "persist", "keeper");
            Assert.Equal(uid, kept["metadata"]!["uid"]!.GetValue<string>());
            Assert.Equal("2Gi", kept["spec"]!["memory"]!["size"]!.GetValue<string>());
            Assert.Equal("Running", kept["status"]!["phase"]!.GetValue<string>());
            var secret = await again.CoreV1.ReadNamespacedSecretAsync("s", "persist");
            Assert.Equal("v", System.Text.Encoding.UTF8.GetString(secret.Data["k"]));
            var list = Vms.ToNode(await again.CustomObjects.ListNamespacedCustomObjectAsync(Vms.Group, Vms.Version, "persist", Vms.Plural));
            Assert.Equal(["keeper"], list["items"]!.AsArray().Select(o => o!["metadata"]!["name"]!.GetValue<string>()));

            // The sequence continues past everything handed out before, deletes included.
            var next = await Vms.CreateAsync(again, "persist", Vms.Manifest("newcomer"));
            Assert.True(long.Parse(Vms.Rv(next), CultureInfo.InvariantCulture) > long.Parse(lastRv, CultureInfo.InvariantCulture));

            // Same CA and token: the old kubeconfig (port aside) still authenticates.
            Assert.Equal(ExtractLine(kubeconfig, "token:"), ExtractLine(File.ReadAllText(second.Kubeconfig), "token:"));
            Assert.Equal(ExtractLine(kubeconfig, "certificate-authority-data:"), ExtractLine(File.ReadAllText(second.Kubeconfig), "certificate-authority-data:"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string ExtractLine(string text, string key) => text.Split('\n').Single(l => l.Trim().StartsWith(key, StringComparison.Ordinal)).Trim();
}
