namespace Vmk.Vmkernel.Vmfs;

/// <summary>What `vmctl ds info` shows. Free space is what is really free, whatever thin disks promise.</summary>
public sealed record DatastoreInfo
{
    public required string Path { get; init; }
    public required Guid Uuid { get; init; }
    public required string Label { get; init; }
    public required int Version { get; init; }
    public required long DeviceBytes { get; init; }
    public required int BlockSize { get; init; }
    public required int SectorSize { get; init; }
    public required long CapacityBytes { get; init; }
    public required long UsedBytes { get; init; }
    public required long FreeBytes { get; init; }
    public required long ProvisionedBytes { get; init; }
    public required bool AllowThinOvercommit { get; init; }
    public required int MaxHosts { get; init; }
    public required int MaxFiles { get; init; }
    public required int Disks { get; init; }
    public required VmfsTimings Timings { get; init; }
    public required bool DirectIo { get; init; }
    public required bool JournalPending { get; init; }
    public required DateTimeOffset Created { get; init; }
    public required IReadOnlyList<HostInfo> Hosts { get; init; }
}
