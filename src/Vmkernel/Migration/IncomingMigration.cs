namespace Vmk.Vmkernel.Migration;

/// <summary>A target prepared for a live migration: the paused VM and where its QEMU listens.</summary>
/// <param name="Id">The migration's id, the same on both hosts.</param>
/// <param name="VmName">The VM on this (target) host.</param>
/// <param name="Uri">What the source's QEMU migrates to, e.g. <c>tcp:10.0.0.2:49152</c>.</param>
public sealed record IncomingMigration(string Id, string VmName, string Uri);
