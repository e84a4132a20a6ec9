namespace Vmk.Vmkernel.Network;

/// <summary>A VXLAN peer host: whether this host reaches its tunnel endpoint, and the guest MACs learned behind it.</summary>
public sealed record PeerStatus(string Address, bool Reachable, int LearnedMacs);
