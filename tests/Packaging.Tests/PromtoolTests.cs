using System.Text.Json.Nodes;
using Vmk.ApiServer.Yaml;

namespace Vmk.Packaging.Tests;

/// <summary>The alert rules through Debian's promtool: syntax, and unit tests that fire every alert.</summary>
public sealed class PromtoolTests
{
    private static readonly string RulesFile = Repo.PathOf("monitoring", "rules", "vmkernel-alerts.yaml");
    private static readonly string TestFile = Repo.PathOf("monitoring", "tests", "vmkernel-alerts.test.yaml");

    private static List<string> AlertNames() => YamlJson.ParseDocuments(File.ReadAllText(RulesFile))[0]["groups"]!.AsArray()
        .SelectMany(g => g!["rules"]!.AsArray()).Select(r => (string?)r!["alert"]).OfType<string>().ToList();

    [Fact]
    public async Task Rules_pass_promtool_check()
    {
        var output = await Tool.OkAsync("promtool", ["check", "rules", RulesFile]);
        Assert.Contains($"SUCCESS: {YamlJson.ParseDocuments(File.ReadAllText(RulesFile))[0]["groups"]!.AsArray().Sum(g => g!["rules"]!.AsArray().Count)} rules found", output);
    }

    [Fact]
    public async Task Unit_tests_pass_and_fire_every_alert()
    {
        var r = await Tool.RunAsync("promtool", ["test", "rules", TestFile]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("SUCCESS", r.Stdout);

        var fired = YamlJson.ParseDocuments(File.ReadAllText(TestFile))[0]["tests"]!.AsArray()
            .SelectMany(t => t!["alert_rule_test"]?.AsArray() ?? [])
            .Where(a => a!["exp_alerts"]!.AsArray().Count > 0)
            .Select(a => (string)a!["alertname"]!).ToHashSet();
        var required = new[]
        {
            "VmkernelHostHeartbeatStale", "VmkernelDatastoreHeartbeatLost", "VmkernelDatastoreSelfFenced",
            "VmkernelLeaseTakeover", "VmkernelMigrationFailed", "VmkernelVmCrashLooping", "VmkernelDatastoreNearlyFull",
        };
        Assert.Empty(required.Except(AlertNames()));
        Assert.Empty(AlertNames().Except(fired));
    }

    [Fact]
    public async Task A_wrong_expectation_fails_promtool_test()
    {
        // The lease-takeover test series takes leases over at 3 m; claiming the alert fires at 2 m must fail.
        var dir = Path.Combine(Path.GetTempPath(), "vmk-promtool-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(RulesFile, Path.Combine(dir, "rules.yaml"));
            var test = $$"""
                rule_files: [rules.yaml]
                evaluation_interval: 1m
                tests:
                - interval: 1m
                  input_series:
                  - series: vmkernel_lease_takeovers_total{datastore="ds1",host="esx2"}
                    values: 0 0 0 2 2 2
                  alert_rule_test:
                  - eval_time: 2m
                    alertname: VmkernelLeaseTakeover
                    exp_alerts:
                    - exp_labels: {severity: warning, datastore: ds1, host: esx2}
                """;
            File.WriteAllText(Path.Combine(dir, "wrong.test.yaml"), test);
            var r = await Tool.RunAsync("promtool", ["test", "rules", Path.Combine(dir, "wrong.test.yaml")]);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("FAILED", r.Stdout + r.Stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task The_chart_PrometheusRule_passes_promtool_check()
    {
        var m = Manifests.Parse(await Helm.TemplateAsync(null, "--set", "metrics.prometheusRule.enabled=true"));
        var groups = m.OfKind("PrometheusRule").Single()["spec"]!["groups"]!.DeepClone();
        var file = Path.Combine(Path.GetTempPath(), "vmk-rendered-rules-" + Guid.NewGuid().ToString("N")[..12] + ".yaml");
        try
        {
            File.WriteAllText(file, new JsonObject { ["groups"] = groups }.ToJsonString());
            var output = await Tool.OkAsync("promtool", ["check", "rules", file]);
            Assert.Contains($"SUCCESS: {AlertNames().Count} rules found", output);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
