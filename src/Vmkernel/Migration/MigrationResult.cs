namespace Vmk.Vmkernel.Migration;

/// <summary>A completed live migration as the source saw it.</summary>
/// <param name="Final">QEMU's last figures: total time, downtime, bytes.</param>
/// <param name="HandoverTime">From QEMU reporting completion to the source's disks revoked and leases released.</param>
public sealed record MigrationResult(MigrationProgress Final, TimeSpan HandoverTime);
