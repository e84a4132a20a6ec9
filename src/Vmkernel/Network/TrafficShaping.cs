namespace Vmk.Vmkernel.Network;

/// <summary>
/// vSphere's traffic shaping, in its units: average and peak bandwidth in kbit/s, burst size in KB. Applied per
/// VM port in both directions (see docs/network.md for exactly what the kernel enforces).
/// </summary>
public sealed record TrafficShaping
{
    public required long AverageKbps { get; init; }

    /// <summary>At least the average; 0 means "same as average".</summary>
    public long PeakKbps { get; init; }

    public required long BurstKB { get; init; }
}
