namespace Vmk.Vmkernel.Vmfs;

/// <summary>What went wrong, for callers that react differently (retry on <see cref="Locked"/>, stop on <see cref="Fenced"/>).</summary>
public enum VmfsErrorCode
{
    /// <summary>The device or file could not be opened, read or written.</summary>
    Io,
    /// <summary>The device carries no VMFS signature.</summary>
    NotADatastore,
    /// <summary>A format was interrupted: the superblock says "formatting".</summary>
    HalfFormatted,
    /// <summary>The on-disk format is newer than this code understands.</summary>
    NewerVersion,
    /// <summary>The device is too small for the requested format.</summary>
    TooSmall,
    /// <summary>A metadata structure failed its checksum or its self-description.</summary>
    Corrupt,
    /// <summary>An argument is invalid (name, size, option).</summary>
    InvalidArgument,
    /// <summary>No disk of that name.</summary>
    NotFound,
    /// <summary>A disk of that name exists already.</summary>
    AlreadyExists,
    /// <summary>Not enough free blocks or descriptors.</summary>
    NoSpace,
    /// <summary>Another host (or this one) holds a conflicting lease.</summary>
    Locked,
    /// <summary>This host lost its heartbeat and fenced itself: nothing more is written.</summary>
    Fenced,
    /// <summary>Every heartbeat slot is taken by a live host.</summary>
    NoHostSlot,
    /// <summary>The operation is not allowed in the disk's state (read-only base, has clones).</summary>
    InvalidState,
    /// <summary>The datastore (or disk) has been closed.</summary>
    Closed,
}
