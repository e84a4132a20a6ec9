namespace Vmk.Vmkernel.Vm;

/// <summary>A VM's state with the reason it is in it, as persisted in <c>state.json</c> and reported to callers.</summary>
/// <param name="State">The power state.</param>
/// <param name="Reason">Why: "started", "guest powered off", QEMU's last error lines...</param>
/// <param name="Since">When the state was entered.</param>
/// <param name="StopRequested">A stop was asked for, so QEMU exiting is expected (Stopped, not Failed).</param>
public sealed record VmStatus(VmState State, string Reason, DateTimeOffset Since, bool StopRequested = false);
