namespace Vmk.Vmkernel.Network;

/// <summary>A fixed address DHCP hands to one MAC; it may lie outside the DHCP range but must be in the subnet.</summary>
public sealed record StaticReservation(string Mac, string Address);
