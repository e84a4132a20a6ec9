namespace Vmk.Operator.Apis.V1Alpha1;

/// <summary>VirtualMachineMigration (namespaced, short name vmim): crds/virtualmachinemigration.yaml.</summary>
public sealed class VirtualMachineMigration : CustomObject
{
    public const string Plural = "virtualmachinemigrations";

    public VirtualMachineMigration()
    {
        Kind = "VirtualMachineMigration";
    }

    public string VmName => Str(Spec, "vmName") ?? "";

    public string? TargetHost => Str(Spec, "targetHost") is { Length: > 0 } h ? h : null;

    public string? Phase => Str(Status, "phase") is { Length: > 0 } p ? p : null;

    /// <summary>Admitted and not finished: counts against the limits and owns its VM.</summary>
    public bool IsActive => Phase is "Scheduling" or "Preparing" or "Running" or "Switchover";

    public bool IsFinished => Phase is "Succeeded" or "Failed" or "Cancelled";

    public bool IsQueued => Phase is null or "Pending";
}
