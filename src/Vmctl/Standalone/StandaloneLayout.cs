namespace Vmk.Vmctl.Standalone;

/// <summary>Where the standalone mode keeps things under its data directory.</summary>
internal sealed class StandaloneLayout(string dataDirectory)
{
    public string DataDirectory { get; } = dataDirectory;

    public string PkiDirectory => Path.Combine(DataDirectory, "pki");

    public string OperatorTlsDirectory => Path.Combine(PkiDirectory, "operator");

    public string HostTlsDirectory(string host) => Path.Combine(PkiDirectory, "hosts", host);

    public string HostStateDirectory(string host) => Path.Combine(DataDirectory, "hosts", host);

    public string LogDirectory => Path.Combine(DataDirectory, "logs");

    public string LogPath(string child) => Path.Combine(LogDirectory, child + ".log");

    /// <summary>The kubeconfig the daemons in network namespaces use: the API server on the fabric address.</summary>
    public string FabricKubeconfig => Path.Combine(DataDirectory, "kubeconfig-fabric");

    /// <summary>What runs where (addresses, pids, logs), for scripts, tests and benchmarks: written on every change.</summary>
    public string StatusFile => Path.Combine(DataDirectory, "standalone.json");

    /// <summary>The run's short id (names of namespaces, bridge, veths), derived from the data directory so a restart reuses them.</summary>
    public string ShortId => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(DataDirectory)))[..6];
}
