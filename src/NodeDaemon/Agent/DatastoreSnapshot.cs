namespace Vmk.NodeDaemon.Agent;

/// <summary>One mounted datastore as this host sees it now: space, its heartbeat, the leases it holds there.</summary>
public sealed record DatastoreSnapshot(
    string Name,
    string DevicePath,
    string Uuid,
    long CapacityBytes,
    long FreeBytes,
    int Disks,
    int HostSlot,
    double? HeartbeatAgeSeconds,
    int LeasesHeld,
    bool Fenced,
    string? Problem);
