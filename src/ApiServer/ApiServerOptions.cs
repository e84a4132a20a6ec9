using System.Net;

namespace Vmk.ApiServer;

/// <summary>Settings of one API server instance.</summary>
public sealed class ApiServerOptions
{
    /// <summary>Holds state.db (SQLite), ca.crt/ca.key, server.crt/server.key, token and kubeconfig.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>0 picks a free port (tests); the standalone default is 6443.</summary>
    public int Port { get; init; } = 6443;

    public IPAddress BindAddress { get; init; } = IPAddress.Loopback;

    /// <summary>
    /// Further addresses to listen on, on the same port (which must then not be 0); the server certificate carries
    /// them too. The standalone mode adds its fabric bridge's address so daemons in network namespaces reach it.
    /// </summary>
    public IReadOnlyList<IPAddress> AdditionalBindAddresses { get; init; } = [];

    /// <summary>CRD manifests (*.yaml) installed (created or updated) at start; null installs none.</summary>
    public string? CrdDirectory { get; init; }

    /// <summary>How many recent changes a watch can resume from before it gets 410 Gone.</summary>
    public int WatchLogCapacity { get; init; } = 50_000;

    /// <summary>Events queued for one watcher before it is cut off (it then re-watches).</summary>
    public int WatchQueueCapacity { get; init; } = 100_000;

    public TimeSpan BookmarkInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Watch duration when the client gives no timeoutSeconds (kube-apiserver: 30-60 min).</summary>
    public TimeSpan DefaultWatchTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>fsync every commit (SQLite synchronous=FULL). Off keeps commits safe from process crashes only.</summary>
    public bool DurableCommits { get; init; } = true;
}
