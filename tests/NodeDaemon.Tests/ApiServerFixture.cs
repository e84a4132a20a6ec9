using k8s;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.ApiServer;

namespace Vmk.NodeDaemon.Tests;

/// <summary>The project's Kubernetes-API-compatible server on a free port with its own data directory, removed on dispose.</summary>
public sealed class ApiServerFixture : IAsyncLifetime
{
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "vmkd-api-" + Guid.NewGuid().ToString("N")[..10]);
    private ApiServerHost? _server;

    public string Kubeconfig => _server?.KubeconfigPath ?? throw new InvalidOperationException("not started");

    public Kubernetes Client() => new(KubernetesClientConfiguration.BuildConfigFromConfigFile(Kubeconfig));

    public async Task InitializeAsync()
    {
        _server = await ApiServerHost.StartAsync(new ApiServerOptions
        {
            DataDirectory = _dataDirectory,
            Port = 0,
            CrdDirectory = CrdLocator.Find() ?? throw new InvalidOperationException("crds/ not found beside the test binary"),
            DurableCommits = false,
        }, NullLoggerFactory.Instance);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        if (Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }
}
