using System.Text.RegularExpressions;
using Vmk.ApiServer.Yaml;

namespace Vmk.Packaging.Tests;

/// <summary>
/// The alerts and dashboards depend on metric names the operator and vmkerneld must export: each one is written
/// down in docs/packaging.md (the contract those components follow) and has samples in the Prometheus check.
/// </summary>
public sealed partial class MetricsContractTests
{
    private static readonly HashSet<string> Builtin = ["up", "ALERTS", "vector", "absent"];

    private static IEnumerable<string> MetricNames(string promql) => MetricName().Matches(promql)
        .Select(m => m.Value)
        .Select(n => Regex.Replace(n, "_(bucket|sum|count)$", ""))
        .Where(n => !Builtin.Contains(n));

    private static List<string> UsedMetrics()
    {
        var exprs = new List<string>();
        exprs.AddRange(YamlJson.ParseDocuments(Repo.Read("monitoring", "rules", "vmkernel-alerts.yaml"))[0]["groups"]!.AsArray()
            .SelectMany(g => g!["rules"]!.AsArray()).Select(r => (string)r!["expr"]!));
        foreach (var f in Directory.GetFiles(Repo.PathOf("monitoring", "dashboards"), "*.json"))
        {
            exprs.AddRange(DashboardTests.Queries(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(f))!).Select(q => q.Query));
        }
        return exprs.SelectMany(MetricNames).Distinct().Order().ToList();
    }

    [Fact]
    public void Every_metric_used_is_documented_in_docs_packaging_md()
    {
        var doc = Repo.Read("docs", "packaging.md");
        var used = UsedMetrics();
        Assert.Contains("vmkernel_vm_cpu_seconds_total", used);
        var missing = used.Where(n => !doc.Contains($"`{n}`", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "not in docs/packaging.md: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_metric_used_has_samples_in_the_Prometheus_check()
    {
        var sampled = SyntheticMetrics.Families.Select(f => f.Name).ToHashSet();
        var missing = UsedMetrics().Where(n => !sampled.Contains(n)).ToList();
        Assert.True(missing.Count == 0, "no synthetic samples for: " + string.Join(", ", missing));
    }

    // Metric names only: an identifier followed by {, [, space, ) or end, not a function call or a label.
    [GeneratedRegex(@"\b(?:vmkernel|controller_runtime|workqueue|leader_election)_[a-z0-9_]+\b")]
    private static partial Regex MetricName();
}
