namespace Vmk.NodeDaemon.Agent;

public enum VmChangeKind
{
    Defined,
    Changed,
    Deleted,
}
