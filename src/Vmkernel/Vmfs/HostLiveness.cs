namespace Vmk.Vmkernel.Vmfs;

/// <summary>What this host knows about another host's heartbeat, judged by its own clock.</summary>
/// <param name="Slot">The heartbeat slot.</param>
/// <param name="HostName">Name written in the slot (empty if unreadable).</param>
/// <param name="IsDead">True when the incarnation is gone (slot freed or re-acquired) or its heartbeat has not changed for hostDeadAfter.</param>
/// <param name="UnchangedFor">How long this host has seen the same heartbeat value.</param>
/// <param name="DeadAfter">How long it must stay unchanged before the host counts as dead.</param>
/// <param name="Problem">Set when the slot could not be read (a corrupt slot is treated as alive: safe, never silent).</param>
public readonly record struct HostLiveness(int Slot, string HostName, bool IsDead, TimeSpan UnchangedFor, TimeSpan DeadAfter, string? Problem);
