namespace Vmk.Vmkernel.Vmfs;

/// <summary>A heartbeat slot as `vmctl ds locks` shows it. The age is by wall clock, for people; hosts judge liveness by change.</summary>
public sealed record HostInfo
{
    public required int Slot { get; init; }
    public required string HostName { get; init; }
    public required bool Live { get; init; }
    public required ulong Generation { get; init; }
    public DateTimeOffset? LastHeartbeat { get; init; }
    public TimeSpan? HeartbeatAge { get; init; }
    /// <summary>True when a live slot's age exceeds its hostDeadAfter: others may take its leases.</summary>
    public required bool PresumedDead { get; init; }
    public string? Problem { get; init; }
}
