using System.Text.Json.Nodes;

namespace Vmk.Packaging.Tests;

/// <summary>
/// The built-in kinds the chart renders (Deployment, DaemonSet, RBAC, Services, Secrets, ServiceMonitor,
/// PrometheusRule, cert-manager objects), which the standalone API server does not serve, validated against the
/// schemas kubernetes-models generates from Kubernetes', the Prometheus Operator's and cert-manager's OpenAPI.
/// </summary>
public sealed class KubernetesSchemaTests
{
    private static readonly Lazy<Task<string>> Validator = new(async () =>
    {
        var r = await Tool.RunAsync(Repo.PathOf("scripts", "install-k8s-schemas.sh"), [], timeout: TimeSpan.FromMinutes(5));
        return r.ExitCode == 0 ? r.Stdout.Trim().Split('\n')[^1] : throw new InvalidOperationException("install-k8s-schemas.sh failed:\n" + r);
    });

    private static async Task<ToolResult> ValidateAsync(IEnumerable<JsonObject> objects) =>
        await Tool.RunAsync("node", [await Validator.Value], new JsonArray(objects.Select(o => (JsonNode)o.DeepClone()).ToArray()).ToJsonString());

    private static void AssertAllValid(ToolResult r, int expected)
    {
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(expected, lines.Length);
        // Only the project's own kinds may lack a schema here (the standalone API server checks those).
        Assert.All(lines, l => Assert.True(l.StartsWith("OK ", StringComparison.Ordinal)
            || (l.StartsWith("UNKNOWN ", StringComparison.Ordinal) && l.Contains("vmkernel.io/", StringComparison.Ordinal)), l));
    }

    [Theory]
    [InlineData(null)]
    [InlineData(Helm.AllOptionsValues)]
    public async Task Rendered_objects_match_their_schemas(string? valuesFile)
    {
        var m = Manifests.Parse(await Helm.TemplateAsync(valuesFile));
        AssertAllValid(await ValidateAsync(m.Objects), m.Objects.Count);
    }

    [Theory]
    [InlineData("vmkernel-operator.yaml")]
    [InlineData("crds.yaml")]
    [InlineData("monitoring.yaml")]
    public async Task Plain_manifests_match_their_schemas(string file)
    {
        var m = Manifests.Parse(Repo.Read("deploy", file));
        AssertAllValid(await ValidateAsync(m.Objects), m.Objects.Count);
    }

    [Fact]
    public async Task A_wrong_field_type_is_reported()
    {
        var deployment = Manifests.Parse(await Helm.TemplateAsync()).OfKind("Deployment").Single();
        deployment["spec"]!["replicas"] = "two";
        var r = await ValidateAsync([deployment]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("INVALID Deployment/t-vmkernel-operator-vm-operator", r.Stdout);
        Assert.Contains("replicas must be integer", r.Stdout);
    }
}
