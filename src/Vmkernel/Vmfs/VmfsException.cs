namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Every failure VMFS reports. The message names the object (disk, structure and byte offset, holder host and
/// lease) and says what to do; <see cref="Code"/> lets callers branch without parsing text.
/// </summary>
public sealed class VmfsException : Exception
{
    public VmfsException(VmfsErrorCode code, string message, Exception? inner = null)
        : base(message, inner) => Code = code;

    public VmfsException()
        : this(VmfsErrorCode.Io, "VMFS error") { }

    public VmfsException(string message)
        : this(VmfsErrorCode.Io, message) { }

    public VmfsException(string message, Exception inner)
        : this(VmfsErrorCode.Io, message, inner) { }

    public VmfsErrorCode Code { get; }

    /// <summary>For <see cref="VmfsErrorCode.Corrupt"/>: the structure that failed (e.g. "heartbeat slot 3").</summary>
    public string? Structure { get; init; }

    /// <summary>For <see cref="VmfsErrorCode.Corrupt"/>: its byte offset on the device.</summary>
    public long? Offset { get; init; }

    internal static VmfsException Corrupt(string structure, long offset, string problem) =>
        new(VmfsErrorCode.Corrupt,
            $"{structure} at byte offset {offset} (0x{offset:x}) is corrupt: {problem}. " +
            "It was not used; run `vmctl ds fsck` to see the damage and `vmctl ds fsck --repair` to fix what can be fixed safely.")
        {
            Structure = structure,
            Offset = offset,
        };
}
