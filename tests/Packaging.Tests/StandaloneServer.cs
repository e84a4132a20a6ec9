using Microsoft.Extensions.Logging.Abstractions;
using Vmk.ApiServer;

namespace Vmk.Packaging.Tests;

/// <summary>
/// The project's standalone API server, started in-process on a free port with no CRDs: everything it serves
/// comes from what the test applies with kubectl (the chart's CRDs, as on a real cluster). Removed on dispose.
/// </summary>
public sealed class StandaloneServer : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "vmk-packaging-" + Guid.NewGuid().ToString("N")[..12]);
    private ApiServerHost? _host;

    public string Kubeconfig => (_host ?? throw new InvalidOperationException("not started")).KubeconfigPath;

    public Kubectl Kubectl { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _host = await ApiServerHost.StartAsync(new ApiServerOptions
        {
            DataDirectory = _dataDir,
            Port = 0,
            CrdDirectory = null,
            DurableCommits = false,
        }, NullLoggerFactory.Instance);
        Kubectl = new Kubectl(Kubeconfig);
    }

    public async Task DisposeAsync()
    {
        Kubectl?.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        if (Directory.Exists(_dataDir))
        {
            Directory.Delete(_dataDir, recursive: true);
        }
    }
}
