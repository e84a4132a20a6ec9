namespace Vmk.Operator.Apis.V1Alpha1;

/// <summary>PortGroup (cluster-scoped): crds/portgroup.yaml.</summary>
public sealed class PortGroup : CustomObject
{
    public const string Plural = "portgroups";

    public PortGroup()
    {
        Kind = "PortGroup";
    }

    /// <summary>Hosts where the last reconcile realized it (status.hosts[].realized).</summary>
    public IReadOnlySet<string> RealizedHosts =>
        Array(Status, "hosts").Where(h => Bool(h, false, "realized")).Select(h => Str(h, "host")).OfType<string>().ToHashSet(StringComparer.Ordinal);
}
