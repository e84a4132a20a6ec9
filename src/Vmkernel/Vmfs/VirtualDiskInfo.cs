namespace Vmk.Vmkernel.Vmfs;

/// <summary>A virtual disk as `vmctl ds ls` shows it: provisioned and allocated sizes side by side.</summary>
public sealed record VirtualDiskInfo
{
    public required string Name { get; init; }
    public required long SizeBytes { get; init; }
    public required long AllocatedBytes { get; init; }
    public required bool Thin { get; init; }
    public string? Base { get; init; }
    public required bool ReadOnlyBase { get; init; }
    public required int Clones { get; init; }
    public required DateTimeOffset Created { get; init; }
}
