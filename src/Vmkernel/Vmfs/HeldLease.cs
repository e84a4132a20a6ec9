namespace Vmk.Vmkernel.Vmfs;

/// <summary>A resource lease this host holds: which one, how, and at which lease version (generation).</summary>
internal sealed record HeldLease(int Resource, LeaseMode Mode, ulong Version);
