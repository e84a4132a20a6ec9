using System.Net;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// One simulated host: its name (the Host object's), the network namespace it runs in (null: the root namespace,
/// the single-host case), the address the operator dials and Prometheus scrapes, and its daemon's ports.
/// </summary>
internal sealed record HostPlan(string Name, string? NetworkNamespace, IPAddress Address, int GrpcPort, int MetricsPort)
{
    public string GrpcEndpoint => $"{Address}:{GrpcPort}";

    public string MetricsEndpoint => $"{Address}:{MetricsPort}";
}
