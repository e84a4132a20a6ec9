using System.Net;

namespace Vmk.NodeDaemon.Configuration;

/// <summary>
/// vmkerneld's settings, bound from the "Vmkerneld" configuration section: command-line switches
/// (<see cref="SwitchMappings"/>), VMKERNELD_* environment variables, or an appsettings file.
/// </summary>
public sealed class DaemonOptions
{
    public const string Section = "Vmkerneld";

    /// <summary>Command-line switches and the settings they set.</summary>
    public static readonly IReadOnlyDictionary<string, string> SwitchMappings = new Dictionary<string, string>
    {
        ["--state-dir"] = $"{Section}:{nameof(StateDirectory)}",
        ["--grpc-listen"] = $"{Section}:{nameof(GrpcListen)}",
        ["--metrics-listen"] = $"{Section}:{nameof(MetricsListen)}",
        ["--tls-dir"] = $"{Section}:{nameof(TlsDirectory)}",
        ["--image-dirs"] = $"{Section}:{nameof(ImageDirectories)}",
        ["--datastore-dirs"] = $"{Section}:{nameof(DatastoreDirectories)}",
        ["--host-name"] = $"{Section}:{nameof(HostName)}",
        ["--advertise-address"] = $"{Section}:{nameof(AdvertiseAddress)}",
        ["--migration-address"] = $"{Section}:{nameof(MigrationAddress)}",
        ["--kubeconfig"] = $"{Section}:{nameof(Kubeconfig)}",
        ["--report-interval"] = $"{Section}:{nameof(ReportIntervalSeconds)}",
        ["--accelerator"] = $"{Section}:{nameof(Accelerator)}",
        ["--qemu-user"] = $"{Section}:{nameof(QemuUser)}",
        ["--cgroups"] = $"{Section}:{nameof(UseCgroups)}",
        ["--reserved-cpu-millicores"] = $"{Section}:{nameof(ReservedCpuMillicores)}",
        ["--reserved-memory-bytes"] = $"{Section}:{nameof(ReservedMemoryBytes)}",
        ["--overlay-address"] = $"{Section}:{nameof(OverlayAddress)}",
    };

    /// <summary>What `vmkerneld --help` prints: the switches and their defaults.</summary>
    public static string Usage()
    {
        var defaults = new DaemonOptions();
        var lines = SwitchMappings.Select(m =>
        {
            var property = typeof(DaemonOptions).GetProperty(m.Value[(Section.Length + 1)..])!;
            var value = property.GetValue(defaults);
            return $"  {m.Key,-28} {(value is null or "" ? "(none)" : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture))}";
        });
        return "usage: vmkerneld [SWITCH VALUE]...   the per-host daemon (docs/node-daemon.md)\n" +
            "       vmkerneld certificates --out DIR [--dns NAME]... [--ip ADDR]...   write a CA and certificates\n" +
            "switches (default; each also VMKERNELD_Vmkerneld__<Name> in the environment):\n" + string.Join("\n", lines);
    }

    /// <summary>VM state (spec, pidfile, QMP and console sockets); re-adoption after a restart reads it.</summary>
    public string StateDirectory { get; set; } = "/var/lib/vmkernel";

    /// <summary>Where the gRPC API listens (mutual TLS, HTTP/2): address:port; port 0 picks a free one.</summary>
    public string GrpcListen { get; set; } = "0.0.0.0:7443";

    /// <summary>Where /metrics is served (plain HTTP, nothing else on that port).</summary>
    public string MetricsListen { get; set; } = "0.0.0.0:9464";

    /// <summary>ca.crt, tls.crt, tls.key: the daemon's TLS Secret mounted as files.</summary>
    public string TlsDirectory { get; set; } = "/etc/vmkernel/tls";

    /// <summary>
    /// Colon-separated directories that kernels and initrds may come from. A boot file outside them (after
    /// resolving symlinks) is refused, so the API cannot be used to read arbitrary host files.
    /// </summary>
    public string ImageDirectories { get; set; } = "/var/cache/vmkernel/guest:/var/lib/vmkernel/images";

    /// <summary>Colon-separated directories in which datastore backing files may lie (block devices under /dev are always allowed).</summary>
    public string DatastoreDirectories { get; set; } = "/var/lib/vmkernel/datastores";

    /// <summary>The Host object's name and the VMFS heartbeat host name; the machine name by default.</summary>
    public string? HostName { get; set; }

    /// <summary>host:port the operator dials, written to Host.spec.endpoint; host name and gRPC port by default.</summary>
    public string? AdvertiseAddress { get; set; }

    /// <summary>
    /// This host's VXLAN tunnel endpoint (an IPv4 address of this host) for port groups that span hosts and name
    /// no uplink_interface; unset = this host's source address on the route to the peers (or the default route).
    /// </summary>
    public string? OverlayAddress { get; set; }

    /// <summary>Kubeconfig for the Host object; unset = in-cluster config when running in a pod, else no Host object.</summary>
    public string? Kubeconfig { get; set; }

    public double ReportIntervalSeconds { get; set; } = 10;

    public string Accelerator { get; set; } = "auto";

    public string? QemuUser { get; set; }

    public bool UseCgroups { get; set; } = true;

    /// <summary>CPU kept back for the host itself (vmkerneld, the kernel, kubelet): not allocatable to VM reservations.</summary>
    public long ReservedCpuMillicores { get; set; } = 250;

    /// <summary>Memory kept back for the host itself.</summary>
    public long ReservedMemoryBytes { get; set; } = 512L << 20;

    public string EffectiveHostName => string.IsNullOrWhiteSpace(HostName) ? Environment.MachineName.ToLowerInvariant() : HostName;

    public IReadOnlyList<string> ImageDirectoryList => SplitDirectories(ImageDirectories);

    public IReadOnlyList<string> DatastoreDirectoryList => SplitDirectories(DatastoreDirectories);

    /// <summary>This host's IP on the migration network; by default the host part of --advertise-address or --grpc-listen.</summary>
    public string? MigrationAddress { get; set; }

    /// <summary>
    /// Where incoming live migrations listen: --migration-address, else the advertised or gRPC listen address when it
    /// is a concrete IP (a name is resolved), else loopback (a single-machine setup).
    /// </summary>
    public string EffectiveMigrationAddress()
    {
        if (!string.IsNullOrWhiteSpace(MigrationAddress))
        {
            return IPAddress.TryParse(MigrationAddress, out _) ? MigrationAddress
                : throw new ArgumentException($"--migration-address '{MigrationAddress}' is not an IP address");
        }
        foreach (var candidate in new[] { AdvertiseAddress, GrpcListen })
        {
            if (string.IsNullOrWhiteSpace(candidate))
            {
                continue;
            }
            var host = candidate.StartsWith('[') ? candidate[1..candidate.IndexOf(']', StringComparison.Ordinal)]
                : candidate.Contains(':', StringComparison.Ordinal) ? candidate[..candidate.LastIndexOf(':')] : candidate;
            if (IPAddress.TryParse(host, out var ip))
            {
                if (!ip.Equals(IPAddress.Any) && !ip.Equals(IPAddress.IPv6Any))
                {
                    return ip.ToString();
                }
                continue;
            }
            try
            {
                var resolved = Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
                if (resolved is not null)
                {
                    return resolved.ToString();
                }
            }
            catch (System.Net.Sockets.SocketException)
            {
            }
        }
        return IPAddress.Loopback.ToString();
    }

    public static IPEndPoint ParseEndpoint(string value, string setting)
    {
        if (IPEndPoint.TryParse(value, out var endpoint) && value.Contains(':', StringComparison.Ordinal))
        {
            return endpoint;
        }
        throw new ArgumentException($"{setting} '{value}' is not address:port (e.g. 0.0.0.0:7443, [::]:7443, 127.0.0.1:0)");
    }

    private static List<string> SplitDirectories(string value) =>
        value.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Path.GetFullPath).ToList();
}
