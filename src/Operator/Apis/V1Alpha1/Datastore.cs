namespace Vmk.Operator.Apis.V1Alpha1;

/// <summary>Datastore (cluster-scoped): crds/datastore.yaml.</summary>
public sealed class Datastore : CustomObject
{
    public const string Plural = "datastores";

    public Datastore()
    {
        Kind = "Datastore";
    }

    public string DevicePath => Str(Spec, "device", "path") ?? "";

    public bool IsFile => Str(Spec, "device", "type") == "file";

    public long DeviceSizeBytes => Quantity(Spec, false, "device", "size") ?? 0;

    public bool AutoFormat => Bool(Spec, false, "format", "autoFormat");
}
