using System.Text.Json.Nodes;

namespace Vmk.Packaging.Tests;

/// <summary>
/// What the chart renders, and every example, applied with the real kubectl to the standalone API server: the
/// server's CRDs are the ones the chart rendered, so the examples are checked against the chart's schemas.
/// Kinds the standalone server does not serve (Deployment, DaemonSet, RBAC, ...) are checked by helm and the
/// chart tests; here: CRDs, the custom objects, Secrets and ConfigMaps.
/// </summary>
public sealed class StandaloneApplyTests : IClassFixture<StandaloneApplyTests.ChartInstalled>
{
    private static readonly HashSet<string> ServedKinds = ["CustomResourceDefinition", "ComputeCluster", "Secret", "ConfigMap"];
    private readonly ChartInstalled _fixture;

    public StandaloneApplyTests(ChartInstalled fixture) => _fixture = fixture;

    private Kubectl Kubectl => _fixture.Server.Kubectl;

    /// <summary>A server with the chart's CRDs applied, as `helm install` applies them before anything else.</summary>
    public sealed class ChartInstalled : IAsyncLifetime
    {
        public StandaloneServer Server { get; } = new();

        public string CrdApplyOutput { get; private set; } = "";

        public async Task InitializeAsync()
        {
            await Server.InitializeAsync();
            var crds = Manifests.Parse(await Helm.TemplateAsync()).OfKind("CustomResourceDefinition");
            CrdApplyOutput = await Server.Kubectl.OkAsync(Manifests.ToYaml(crds), "apply", "-f", "-");
        }

        public Task DisposeAsync() => Server.DisposeAsync();
    }

    [Fact]
    public void The_rendered_CRDs_are_created()
    {
        foreach (var crd in new[] { "virtualmachines", "datastores", "portgroups", "virtualmachinemigrations", "hosts", "computeclusters" })
        {
            Assert.Contains($"customresourcedefinition.apiextensions.k8s.io/{crd}.vmkernel.io created", _fixture.CrdApplyOutput);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData(Helm.AllOptionsValues)]
    public async Task Rendered_custom_objects_secrets_and_dashboards_are_accepted(string? valuesFile)
    {
        var m = Manifests.Parse(await Helm.TemplateAsync(valuesFile));
        var objects = m.Objects.Where(o => ServedKinds.Contains(Manifests.Kind(o)) && Manifests.Kind(o) != "CustomResourceDefinition").ToList();
        Assert.Contains(objects, o => Manifests.Kind(o) == "ComputeCluster");
        foreach (var ns in objects.Select(o => (string?)o["metadata"]!["namespace"]).OfType<string>().Distinct())
        {
            await Kubectl.OkAsync($"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n", "apply", "-f", "-");
        }
        var applied = await Kubectl.OkAsync(Manifests.ToYaml(objects), "apply", "-f", "-");
        foreach (var o in objects)
        {
            Assert.Matches($@"{Manifests.Kind(o).ToLowerInvariant()}[a-z.]*/{Manifests.Name(o)} (created|configured|unchanged)", applied);
        }
        var cc = m.OfKind("ComputeCluster").Single();
        var stored = JsonNode.Parse(await Kubectl.OkAsync(null, "get", "computecluster", Manifests.Name(cc), "-o", "json"))!;
        Assert.Equal((int)cc["spec"]!["drs"]!["migrationThreshold"]!, (int)stored["spec"]!["drs"]!["migrationThreshold"]!);
    }

    [Fact]
    public async Task Upgrade_keeps_the_issued_certificates_and_an_existing_ComputeCluster()
    {
        // helm template --dry-run=server runs the chart's lookups against the server, as helm upgrade does.
        var ns = "up-" + Guid.NewGuid().ToString("N")[..8];
        var cluster = "cc-" + Guid.NewGuid().ToString("N")[..8];
        string[] args = ["template", "vmkernel", Repo.PathOf(Helm.Chart), "--namespace", ns, "--set", "computeCluster.name=" + cluster];
        string[] upgrade = [.. args, "--dry-run=server", "--kubeconfig", _fixture.Server.Kubeconfig];
        var helm = await Helm.PathAsync();
        var install = Manifests.Parse(await Tool.OkAsync(helm, args));
        await Kubectl.OkAsync($"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n", "apply", "-f", "-");
        await Kubectl.OkAsync(Manifests.ToYaml(install.OfKind("Secret").Concat(install.OfKind("ComputeCluster"))), "apply", "-f", "-");

        var upgraded = Manifests.Parse(await Tool.OkAsync(helm, upgrade));
        foreach (var secret in install.OfKind("Secret"))
        {
            var again = upgraded.Single("Secret", Manifests.Name(secret));
            Assert.Equal((string)secret["data"]!["tls.crt"]!, (string)again["data"]!["tls.crt"]!);
            Assert.Equal((string)secret["data"]!["tls.key"]!, (string)again["data"]!["tls.key"]!);
        }
        Assert.Empty(upgraded.OfKind("ComputeCluster"));

        // Without the Secrets on the server, a new CA is generated: the reuse above is not a coincidence.
        var fresh = Manifests.Parse(await Tool.OkAsync(helm, [.. upgrade.Select(a => a == ns ? ns + "-other" : a)]));
        Assert.NotEqual((string)install.Single("Secret", "vmkernel-ca")["data"]!["tls.crt"]!, (string)fresh.Single("Secret", "vmkernel-ca")["data"]!["tls.crt"]!);
    }

    [Fact]
    public async Task Every_example_is_accepted()
    {
        var applied = await Kubectl.OkAsync(null, "apply", "-f", Repo.PathOf("examples"));
        Assert.Contains("datastore.vmkernel.io/local", applied);
        Assert.Contains("portgroup.vmkernel.io/vm-network", applied);
        Assert.Contains("virtualmachine.vmkernel.io/test-guest", applied);
        var all = await Kubectl.OkAsync(null, "get", "vmkernel", "-A", "-o", "name");
        Assert.Contains("virtualmachine.vmkernel.io/test-guest", all);
    }

    public static TheoryData<string> BrokenExamples()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Repo.PathOf("examples", "broken"), "*.yaml").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BrokenExamples))]
    public async Task Broken_example_is_rejected_naming_the_field(string file)
    {
        var path = Repo.PathOf("examples", "broken", file);
        var expected = File.ReadLines(path).Select(l => l.Trim())
            .Single(l => l.StartsWith("# rejected: ", StringComparison.Ordinal))["# rejected: ".Length..];
        var r = await Kubectl.RunAsync(null, "apply", "-f", path);
        Assert.True(r.ExitCode != 0, "kubectl accepted a broken example:\n" + r);
        Assert.Contains(expected, r.Stderr);
        Assert.Contains("is invalid", r.Stderr);
    }
}
