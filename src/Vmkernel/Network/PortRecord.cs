namespace Vmk.Vmkernel.Network;

/// <summary>One VM NIC attached to a port group: its tap on this host and the MAC the policy checks against.</summary>
public sealed record PortRecord(string Vm, string Nic, string Tap, string Mac);
