using System.Text;
using System.Text.Json.Nodes;

namespace Vmk.Packaging.Tests;

/// <summary>Installing without helm, as docs/packaging.md says, against a standalone server of its own.</summary>
[Trait("Category", "Slow")]
public sealed class PlainManifestTests : IClassFixture<StandaloneServer>
{
    private readonly StandaloneServer _server;

    public PlainManifestTests(StandaloneServer server) => _server = server;

    [Fact]
    public async Task Deploy_CRDs_then_certificates_then_the_default_ComputeCluster()
    {
        var k = _server.Kubectl;
        var crds = await k.OkAsync(null, "apply", "--server-side", "-f", Repo.PathOf("deploy", "crds.yaml"));
        Assert.Contains("customresourcedefinition.apiextensions.k8s.io/virtualmachines.vmkernel.io serverside-applied", crds);

        var env = new Dictionary<string, string> { ["KUBECONFIG"] = _server.Kubeconfig };
        var script = Repo.PathOf("deploy", "make-certificates.sh");
        var made = await Tool.RunAsync(script, [], environment: env);
        Assert.True(made.ExitCode == 0, made.ToString());
        Assert.Contains("created the CA, vmkerneld and operator certificates in namespace vmkernel-system", made.Stderr);
        var again = await Tool.RunAsync(script, [], environment: env);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("nothing to do", again.Stderr);

        // The Secrets carry what the chart's templates mount: ca.crt, tls.crt, tls.key, and the leaves chain to the CA.
        var dir = Path.Combine(Path.GetTempPath(), "vmk-certs-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        try
        {
            foreach (var (secret, purpose) in new[] { ("vmkernel-vmkerneld-tls", "sslserver"), ("vmkernel-vm-operator-tls", "sslclient") })
            {
                var data = JsonNode.Parse(await k.OkAsync(null, "get", "secret", secret, "-n", "vmkernel-system", "-o", "json"))!["data"]!;
                foreach (var key in new[] { "ca.crt", "tls.crt", "tls.key" })
                {
                    File.WriteAllBytes(Path.Combine(dir, $"{secret}-{key}"), Convert.FromBase64String((string)data[key]!));
                }
                var verify = await Tool.RunAsync("openssl", ["verify", "-purpose", purpose, "-CAfile", Path.Combine(dir, $"{secret}-ca.crt"), Path.Combine(dir, $"{secret}-tls.crt")]);
                Assert.True(verify.ExitCode == 0, verify.ToString());
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        // Every Secret the plain manifests mount is one the script made.
        var mounted = Manifests.Parse(Repo.Read("deploy", "vmkernel-operator.yaml")).Objects
            .SelectMany(o => o.ToJsonString().Split("\"secretName\":\"").Skip(1).Select(s => s[..s.IndexOf('"', StringComparison.Ordinal)]))
            .Distinct().ToList();
        Assert.Equal(["vmkernel-vm-operator-tls", "vmkernel-vmkerneld-tls"], mounted.Order());
        foreach (var secret in mounted)
        {
            await k.OkAsync(null, "get", "secret", secret, "-n", "vmkernel-system");
        }

        var cc = await k.OkAsync(null, "apply", "-f", Repo.PathOf("deploy", "default-computecluster.yaml"));
        Assert.Contains("computecluster.vmkernel.io/default created", cc);
        var text = Encoding.UTF8.GetString(File.ReadAllBytes(Repo.PathOf("deploy", "vmkernel-operator.yaml")));
        Assert.DoesNotContain("kind: Secret", text);
        Assert.DoesNotContain("kind: CustomResourceDefinition", text);
    }
}
