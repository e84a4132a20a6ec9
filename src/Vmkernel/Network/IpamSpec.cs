namespace Vmk.Vmkernel.Network;

/// <summary>
/// Addresses of one segment, served by a dnsmasq per host bound to the port group's bridge. The gateway is
/// announced to guests; each host's bridge takes a service address of its own (see <see cref="IpamPlan"/>).
/// </summary>
public sealed record IpamSpec
{
    /// <summary>IPv4 subnet in CIDR form, e.g. 10.20.0.0/24.</summary>
    public required string Subnet { get; init; }

    /// <summary>Default route announced to guests; inside the subnet.</summary>
    public string? Gateway { get; init; }

    public required string RangeStart { get; init; }

    public required string RangeEnd { get; init; }

    public IReadOnlyList<StaticReservation> Reservations { get; init; } = [];

    /// <summary>Lease time in seconds (dnsmasq's minimum is 120).</summary>
    public int LeaseSeconds { get; init; } = 3600;
}
