using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Vmk.Packaging.Tests;

/// <summary>The Grafana dashboards: well-formed, and every query accepted and answered by a real Prometheus.</summary>
public sealed partial class DashboardTests : IClassFixture<PrometheusServer>
{
    private readonly PrometheusServer _prometheus;

    public DashboardTests(PrometheusServer prometheus) => _prometheus = prometheus;

    public static TheoryData<string> Dashboards()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Repo.PathOf("monitoring", "dashboards"), "*.json").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    private static JsonNode Load(string file) => JsonNode.Parse(Repo.Read("monitoring", "dashboards", file))!;

    /// <summary>Every PromQL query of a dashboard: panel targets and template variables (label_values(...) as a query).</summary>
    public static List<(string Where, string Query)> Queries(JsonNode dashboard)
    {
        var list = new List<(string, string)>();
        foreach (var panel in dashboard["panels"]!.AsArray())
        {
            foreach (var target in panel!["targets"]!.AsArray())
            {
                list.Add(($"panel '{panel["title"]}' {target!["refId"]}", (string)target["expr"]!));
            }
        }
        foreach (var v in dashboard["templating"]!["list"]!.AsArray().Where(v => (string)v!["type"]! == "query"))
        {
            var m = LabelValues().Match((string)v!["definition"]!);
            Assert.True(m.Success, $"variable {v["name"]}: expected label_values(metric, label)");
            list.Add(($"variable ${v["name"]}", $"group by ({m.Groups[2].Value}) ({m.Groups[1].Value})"));
        }
        return list;
    }

    /// <summary>What Grafana substitutes before the query reaches Prometheus; variables select every value.</summary>
    public static string Substitute(string query) => query
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$__range", "30m", StringComparison.Ordinal)
        .Replace("$__interval", "15s", StringComparison.Ordinal)
        .Replace("$host", ".+", StringComparison.Ordinal)
        .Replace("$namespace", ".+", StringComparison.Ordinal)
        .Replace("$vm", ".+", StringComparison.Ordinal)
        .Replace("$datastore", ".+", StringComparison.Ordinal);

    [Theory]
    [MemberData(nameof(Dashboards))]
    public void Dashboard_is_well_formed(string file)
    {
        var d = Load(file);
        Assert.False(string.IsNullOrWhiteSpace((string?)d["uid"]));
        Assert.StartsWith("VMkernel / ", (string)d["title"]!);
        Assert.Contains(d["templating"]!["list"]!.AsArray(), v => (string)v!["name"]! == "datasource" && (string)v["type"]! == "datasource");
        var panels = d["panels"]!.AsArray();
        Assert.NotEmpty(panels);
        Assert.Equal(panels.Count, panels.Select(p => (int)p!["id"]!).Distinct().Count());
        foreach (var p in panels)
        {
            Assert.Equal("${datasource}", (string)p!["datasource"]!["uid"]!);
            Assert.NotEmpty(p["targets"]!.AsArray());
            var g = p["gridPos"]!;
            Assert.InRange((int)g["x"]! + (int)g["w"]!, 1, 24);
        }
        // Every variable used in a query is defined.
        var defined = d["templating"]!["list"]!.AsArray().Select(v => (string)v!["name"]!).ToHashSet();
        foreach (var (where, q) in Queries(d))
        {
            foreach (Match m in Variable().Matches(q))
            {
                Assert.True(defined.Contains(m.Groups[1].Value), $"{file} {where}: ${m.Groups[1].Value} is not a dashboard variable");
            }
        }
    }

    [Fact]
    public void Dashboard_uids_are_unique()
    {
        var uids = Directory.GetFiles(Repo.PathOf("monitoring", "dashboards"), "*.json")
            .Select(f => (string)Load(Path.GetFileName(f))["uid"]!).ToList();
        Assert.Equal(uids.Count, uids.Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Dashboards))]
    public async Task Every_query_evaluates_and_returns_data(string file)
    {
        var failures = new List<string>();
        foreach (var (where, query) in Queries(Load(file)))
        {
            var promql = Substitute(query);
            var answer = await _prometheus.QueryAsync(promql);
            if ((string?)answer["status"] != "success")
            {
                failures.Add($"{where}: {promql}\n  error: {answer["error"]}");
            }
            else if (answer["data"]!["result"]!.AsArray().Count == 0)
            {
                failures.Add($"{where}: {promql}\n  returned no data");
            }
        }
        Assert.True(failures.Count == 0, $"{file}:\n" + string.Join("\n", failures));
    }

    [Fact]
    public async Task Prometheus_reports_a_query_that_does_not_parse()
    {
        var answer = await _prometheus.QueryAsync("rate(vmkernel_vm_cpu_seconds_total[5])");
        Assert.Equal("error", (string?)answer["status"]);
        Assert.Contains("parse error", (string?)answer["error"]);
    }

    [GeneratedRegex(@"^label_values\((.+),\s*([a-zA-Z_]+)\)$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"\$(?!__)([a-zA-Z_]+)")]
    private static partial Regex Variable();
}
