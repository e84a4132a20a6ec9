namespace Vmk.NodeDaemon.Agent;

/// <summary>The Kubernetes object a VM was defined for; empty strings when defined by hand.</summary>
public sealed record VmOwnerRecord(string Namespace, string Name, string Uid)
{
    public static readonly VmOwnerRecord None = new("", "", "");
}
