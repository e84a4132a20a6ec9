namespace Vmk.Vmkernel.Network;

/// <summary>vSphere's two answers to a security policy question.</summary>
public enum PolicyAction
{
    Reject,
    Accept,
}
