using System.Net.Http.Headers;
using k8s;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vmk.ApiServer.Tests;

/// <summary>A real API server on a free port with its own temporary data directory, removed on dispose.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private TestServer(ApiServerHost host, string dataDir, bool ownsDir)
    {
        Host = host;
        DataDirectory = dataDir;
        OwnsDirectory = ownsDir;
    }

    public ApiServerHost Host { get; }

    public string DataDirectory { get; }

    private bool OwnsDirectory { get; }

    public string Kubeconfig => Host.KubeconfigPath;

    public static string NewDataDirectory() => Path.Combine(Path.GetTempPath(), "vmk-apiserver-test-" + Guid.NewGuid().ToString("N")[..12]);

    public static async Task<TestServer> StartAsync(string? dataDir = null, int watchLogCapacity = 50_000, TimeSpan? bookmarkInterval = null, bool durable = false)
    {
        var owns = dataDir is null;
        dataDir ??= NewDataDirectory();
        var crds = CrdLocator.Find() ?? throw new InvalidOperationException("crds/ not found beside the test binary");
        var host = await ApiServerHost.StartAsync(new ApiServerOptions
        {
            DataDirectory = dataDir,
            Port = 0,
            CrdDirectory = crds,
            WatchLogCapacity = watchLogCapacity,
            BookmarkInterval = bookmarkInterval ?? TimeSpan.FromSeconds(1),
            DurableCommits = durable,
        }, NullLoggerFactory.Instance);
        return new TestServer(host, dataDir, owns);
    }

    public Kubernetes Client() => new(KubernetesClientConfiguration.BuildConfigFromConfigFile(Kubeconfig));

    /// <summary>An HttpClient that trusts the server's CA, with or without the bearer token.</summary>
    public HttpClient Http(bool withToken = true)
    {
        var ca = Host.Credentials.CaCertificate;
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, chain, errors) =>
            {
                if (cert is null || chain is null)
                {
                    return false;
                }
                chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
                return chain.Build(cert);
            },
        };
        var http = new HttpClient(handler) { BaseAddress = new Uri(Host.Url) };
        if (withToken)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Host.Credentials.Token);
        }
        return http;
    }

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        if (OwnsDirectory && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }
}
