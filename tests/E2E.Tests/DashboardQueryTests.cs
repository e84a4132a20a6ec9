using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Vmk.E2E.Tests;

/// <summary>
/// Issue 10's check with real parts: a real Prometheus scrapes the operator and the node daemons of a standalone
/// run with a guest running, and every query of every dashboard in monitoring/dashboards is sent to it. None may
/// error; the core panels (cluster overview, host, VM, datastore; migrations need a migration to have data)
/// must return data.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed partial class DashboardQueryTests(OneHostStandalone fixture) : IClassFixture<OneHostStandalone>
{
    private static readonly string[] CoreDashboards = ["cluster-overview.json", "host.json", "vm.json", "datastore.json"];
    private readonly StandaloneRun _run = fixture.Run;

    [Fact]
    public async Task Every_dashboard_query_evaluates_against_the_scraped_standalone_and_core_panels_have_data()
    {
        var name = _run.Track(Vms.UniqueName("e2e-prom"));
        await _run.Kubectl.ApplyAsync(_run.ExampleDatastore() + "\n---\n" + File.ReadAllText(Repo.PathOf("examples", "portgroup.yaml")) + "\n---\n" + Vms.Manifest(name));
        await Vms.WaitRunningAsync(_run, name);

        var status = _run.Status();
        var operatorMetrics = new Uri((string?)status["operator"]?["metrics"] ?? throw new Xunit.Sdk.XunitException($"standalone.json has no operator metrics address: {status}"));
        var daemons = status["hosts"]!.AsArray().Select(h => new Uri((string)h!["metrics"]!)).ToList();
        await using var prometheus = PrometheusServer.Start(new Dictionary<string, IReadOnlyList<string>>
        {
            ["vm-operator"] = [$"{operatorMetrics.Host}:{operatorMetrics.Port}"],
            ["vmkerneld"] = daemons.Select(d => $"{d.Host}:{d.Port}").ToList(),
        });
        await Eventually.WaitAsync(async () =>
        {
            var targets = await prometheus.TargetsAsync();
            return (targets.Count == 1 + daemons.Count && targets.All(t => t.Health == "up"), 0, string.Join("; ", targets));
        }, TimeSpan.FromSeconds(60), "Prometheus scraping the operator and every daemon");
        // rate() needs two samples a scrape interval apart in the window; wait until a counter has them.
        await Eventually.WaitAsync(async () =>
        {
            var a = await prometheus.QueryAsync("count_over_time(up[1m])");
            var n = a["data"]?["result"]?.AsArray().Select(r => double.Parse((string)r!["value"]![1]!, System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Min() ?? 0;
            return (n >= 5, 0, a.ToJsonString());
        }, TimeSpan.FromSeconds(60), "five scrapes of every target");

        var failures = new List<string>();
        foreach (var file in Directory.GetFiles(Repo.PathOf("monitoring", "dashboards"), "*.json").Order())
        {
            var core = CoreDashboards.Contains(Path.GetFileName(file));
            foreach (var (where, query) in Queries(JsonNode.Parse(File.ReadAllText(file))!))
            {
                var promql = Substitute(query);
                var answer = await prometheus.QueryAsync(promql);
                if ((string?)answer["status"] != "success")
                {
                    failures.Add($"{Path.GetFileName(file)} {where}: {promql}\n  error: {answer["error"]}");
                }
                else if (core && answer["data"]!["result"]!.AsArray().Count == 0)
                {
                    failures.Add($"{Path.GetFileName(file)} {where}: {promql}\n  returned no data");
                }
            }
        }
        Assert.True(failures.Count == 0, "dashboard queries against the standalone run:\n" + string.Join("\n", failures));

        var delete = await _run.Kubectl.RunAsync("delete", "vm", name, "--timeout=240s");
        Assert.True(delete.ExitCode == 0, delete.ToString());
    }

    /// <summary>Every PromQL query of a dashboard: panel targets and template variables (label_values(...) as a query).</summary>
    private static List<(string Where, string Query)> Queries(JsonNode dashboard)
    {
        var list = new List<(string, string)>();
        foreach (var panel in dashboard["panels"]!.AsArray())
        {
            foreach (var target in panel!["targets"]?.AsArray() ?? [])
            {
                list.Add(($"panel '{panel["title"]}' {target!["refId"]}", (string)target["expr"]!));
            }
        }
        foreach (var v in dashboard["templating"]?["list"]?.AsArray().Where(v => (string?)v!["type"] == "query") ?? [])
        {
            var m = LabelValues().Match((string)v!["definition"]!);
            Assert.True(m.Success, $"variable {v["name"]}: expected label_values(metric, label)");
            list.Add(($"variable ${v["name"]}", $"group by ({m.Groups[2].Value}) ({m.Groups[1].Value})"));
        }
        return list;
    }

    /// <summary>What Grafana substitutes before a query reaches Prometheus; variables select every value.</summary>
    private static string Substitute(string query) => Variable().Replace(query
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$__range", "30m", StringComparison.Ordinal)
        .Replace("$__interval", "15s", StringComparison.Ordinal), ".+");

    [GeneratedRegex(@"^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"\$(?!__)\w+")]
    private static partial Regex Variable();
}
