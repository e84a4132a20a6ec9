using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.ApiServer;

namespace Vmk.Operator.Tests;

/// <summary>The real standalone API server, in-process on a free port, with its own data directory (removed on dispose).</summary>
public sealed class ApiServerFixture : IAsyncLifetime
{
    private ApiServerHost? _host;
    private string? _dataDir;

    public ApiServerHost Host => _host ?? throw new InvalidOperationException("server not started");

    /// <summary>Changes a watch can resume across before it gets 410 Gone.</summary>
    public int WatchLogCapacity { get; init; } = 50_000;

    public TimeSpan BookmarkInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    public static async Task<ApiServerFixture> StartAsync(int watchLogCapacity)
    {
        var fixture = new ApiServerFixture { WatchLogCapacity = watchLogCapacity };
        await fixture.InitializeAsync();
        return fixture;
    }

    public async Task InitializeAsync()
    {
        _dataDir = Path.Combine(Path.GetTempPath(), "vmk-operator-test-" + Guid.NewGuid().ToString("N")[..12]);
        var crds = CrdLocator.Find() ?? throw new InvalidOperationException("crds/ not found beside the test binary");
        _host = await ApiServerHost.StartAsync(new ApiServerOptions
        {
            DataDirectory = _dataDir,
            Port = 0,
            CrdDirectory = crds,
            WatchLogCapacity = WatchLogCapacity,
            BookmarkInterval = BookmarkInterval,
            DurableCommits = false,
        }, NullLoggerFactory.Instance);
    }

    /// <summary>A client of the server; <paramref name="handlers"/> sit between it and the network (see <see cref="FlakyNetwork"/>).</summary>
    public Kubernetes Client(params DelegatingHandler[] handlers)
        => new(KubernetesClientConfiguration.BuildConfigFromConfigFile(Host.KubeconfigPath), handlers);

    public async Task<string> NewNamespaceAsync()
    {
        using var client = Client();
        var ns = "op-" + Guid.NewGuid().ToString("N")[..10];
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } });
        return ns;
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        if (_dataDir is not null && Directory.Exists(_dataDir))
        {
            Directory.Delete(_dataDir, recursive: true);
        }
    }
}
