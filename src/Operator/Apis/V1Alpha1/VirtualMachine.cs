using System.Text.Json.Nodes;

namespace Vmk.Operator.Apis.V1Alpha1;

/// <summary>VirtualMachine (namespaced): crds/virtualmachine.yaml.</summary>
public sealed class VirtualMachine : CustomObject
{
    public const string Plural = "virtualmachines";

    public VirtualMachine()
    {
        Kind = "VirtualMachine";
    }

    public string RunPolicy => Str(Spec, "runPolicy") ?? "Always";

    public string? AssignedHost => Str(Status, "host") is { Length: > 0 } h ? h : null;

    public string? Phase => Str(Status, "phase");

    public long MemoryBytes => Quantity(Spec, false, "memory", "size") ?? (256L << 20);

    public long MemoryReservationBytes => Quantity(Spec, false, "memory", "reservation") ?? 0;

    public long CpuReservationMillicores => Quantity(Spec, true, "cpu", "reservation") ?? 0;

    /// <summary>Configured vCPUs as millicores (what spreading by load weighs).</summary>
    public long VcpuMillicores =>
        1000L * (Long(Spec, "cpu", "sockets") ?? 1) * (Long(Spec, "cpu", "cores") ?? 1) * (Long(Spec, "cpu", "threads") ?? 1);

    public IEnumerable<JsonObject> Disks => Array(Spec, "disks").OfType<JsonObject>();

    public IEnumerable<JsonObject> Nics => Array(Spec, "nics").OfType<JsonObject>();

    public IEnumerable<string> PortGroups => Nics.Select(n => Str(n, "portGroup")).OfType<string>().Distinct();

    public IEnumerable<string> Datastores => Disks.Select(d => Str(d, "datastore")).OfType<string>().Distinct();
}
