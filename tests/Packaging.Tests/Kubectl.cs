namespace Vmk.Packaging.Tests;

/// <summary>The real kubectl against one server, with a private discovery cache (removed on dispose).</summary>
public sealed class Kubectl(string kubeconfig) : IDisposable
{
    private readonly string _cacheDir = Path.Combine(Path.GetTempPath(), "vmk-kubectl-cache-" + Guid.NewGuid().ToString("N")[..12]);

    public string KubeconfigPath => kubeconfig;

    public Task<ToolResult> RunAsync(string? stdin, params string[] args) =>
        Tool.RunAsync("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", _cacheDir, .. args], stdin);

    public async Task<string> OkAsync(string? stdin, params string[] args)
    {
        var r = await RunAsync(stdin, args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }

    public void Dispose()
    {
        if (Directory.Exists(_cacheDir))
        {
            Directory.Delete(_cacheDir, recursive: true);
        }
    }
}
