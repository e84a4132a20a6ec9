namespace Vmk.Packaging.Tests;

/// <summary>The chart's copies (scripts/sync-chart.sh) are byte-identical to their sources, and deploy/ to the chart.</summary>
public sealed class ChartFilesTests
{
    [Theory]
    [InlineData("crds", "crds", "*.yaml")]
    [InlineData("monitoring/rules", "rules", "*.yaml")]
    [InlineData("monitoring/dashboards", "dashboards", "*.json")]
    public void Chart_copies_are_identical_to_their_sources(string source, string copy, string pattern)
    {
        var sourceDir = Repo.PathOf(source);
        var copyDir = Repo.PathOf(Helm.Chart, "files", copy);
        var sources = Directory.GetFiles(sourceDir, pattern).Select(Path.GetFileName).Order().ToList();
        var copies = Directory.GetFiles(copyDir, pattern).Select(Path.GetFileName).Order().ToList();
        Assert.True(sources.SequenceEqual(copies),
            $"{Helm.Chart}/files/{copy} has [{string.Join(", ", copies)}], {source} has [{string.Join(", ", sources)}]; run scripts/sync-chart.sh");
        foreach (var name in sources)
        {
            Assert.True(File.ReadAllBytes(Path.Combine(sourceDir, name!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(copyDir, name!))),
                $"{Helm.Chart}/files/{copy}/{name} differs from {source}/{name}; run scripts/sync-chart.sh");
        }
    }

    [Fact]
    public async Task Plain_manifests_in_deploy_match_the_chart()
    {
        var helm = await Helm.PathAsync();
        var r = await Tool.RunAsync(Repo.PathOf("scripts", "render-deploy.sh"), ["--check"],
            environment: new Dictionary<string, string> { ["HELM"] = helm });
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("deploy/ matches the chart", r.Stderr);
    }
}
