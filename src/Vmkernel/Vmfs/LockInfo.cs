namespace Vmk.Vmkernel.Vmfs;

/// <summary>A resource lease as `vmctl ds locks` shows it.</summary>
public sealed record LockInfo
{
    /// <summary>"metadata" for the datastore-wide metadata lock, else the disk name.</summary>
    public required string Resource { get; init; }
    public required LeaseMode Mode { get; init; }
    public string? OwnerHost { get; init; }
    public int? OwnerSlot { get; init; }
    public ulong OwnerGeneration { get; init; }
    /// <summary>Lease version: the generation counter, +1 on every acquisition.</summary>
    public required ulong Version { get; init; }
    public DateTimeOffset? AcquiredAt { get; init; }
    public required IReadOnlyList<string> SharedReaders { get; init; }
    /// <summary>Owner's heartbeat age (wall clock), when it has one.</summary>
    public TimeSpan? OwnerHeartbeatAge { get; init; }
    public string? Problem { get; init; }
}
