namespace Vmk.Vmkernel.Vmfs;

/// <summary>One problem fsck found.</summary>
/// <param name="Structure">The structure, e.g. "file descriptor 3" or "allocation bitmap sector 0".</param>
/// <param name="Offset">Its byte offset on the device, when it is one sector.</param>
/// <param name="Problem">What is wrong, in words.</param>
/// <param name="Repairable">True when `fsck --repair` can fix it without risking data.</param>
/// <param name="IsError">False for notices (a committed journal transaction waiting for replay is normal after a crash).</param>
public sealed record FsckFinding(string Structure, long? Offset, string Problem, bool Repairable, bool IsError = true);
