namespace Vmk.Vmkernel.Vm;

/// <summary>
/// The IPv4 addresses the host learned for one NIC of a running VM, as "address/prefix" when the port group's
/// subnet gives the prefix: from the port group's DHCP leases (by MAC) and from the guest's own
/// <c>VMK-GUEST-IP</c> console report.
/// </summary>
public sealed record NicAddresses(string Nic, string Mac, string? PortGroup, IReadOnlyList<string> Addresses);
