using System.Globalization;

namespace Vmk.Operator.Apis.V1Alpha1;

/// <summary>Host (cluster-scoped): written by vmkerneld (crds/host.yaml); the operator reads it and judges its heartbeat.</summary>
public sealed class Host : CustomObject
{
    public const string Plural = "hosts";

    public Host()
    {
        Kind = "Host";
    }

    /// <summary>host:port of the daemon's gRPC API.</summary>
    public string? Endpoint => Str(Spec, "endpoint") is { Length: > 0 } e ? e : null;

    /// <summary>The host part of the endpoint: its underlay address for VXLAN peers.</summary>
    public string? UnderlayAddress
    {
        get
        {
            if (Endpoint is not { } e)
            {
                return null;
            }
            var colon = e.LastIndexOf(':');
            var host = colon > 0 ? e[..colon] : e;
            return host.Trim('[', ']');
        }
    }

    public bool Unschedulable => Bool(Spec, false, "unschedulable") || Bool(Spec, false, "maintenance");

    public string? Phase => Str(Status, "phase");

    public DateTimeOffset? Heartbeat =>
        Str(Status, "heartbeat") is { } s && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null;

    public double? HeartbeatAgeSeconds(DateTimeOffset now) => Heartbeat is { } t ? Math.Max(0, (now - t).TotalSeconds) : null;

    /// <summary>
    /// Ready as the daemon reported and the operator judged it: phase Ready, or a maintenance phase (which the
    /// daemon keeps) while its Ready condition holds: a host being evacuated must still be reachable.
    /// </summary>
    public bool IsReady => Endpoint is not null && (Phase == "Ready"
        || (Phase is "EnteringMaintenance" or "Maintenance" && Str(Array(Status, "conditions").FirstOrDefault(c => Str(c, "type") == "Ready"), "status") == "True"));

    public long AllocatableCpuMillicores => Quantity(Status, true, "allocatable", "cpu") ?? 0;

    public long AllocatableMemoryBytes => Quantity(Status, false, "allocatable", "memory") ?? 0;

    public long AllocatedCpuMillicores => Quantity(Status, true, "allocated", "cpu") ?? 0;

    public long AllocatedMemoryBytes => Quantity(Status, false, "allocated", "memory") ?? 0;

    public bool HasDatastoreMounted(string name) =>
        Array(Status, "datastores").Any(d => Str(d, "name") == name && Bool(d, true, "mounted") && !Bool(d, false, "fenced"));
}
