namespace Vmk.Vmkernel.Storage;

/// <summary>
/// A virtual disk as the storage I/O stack sees it: byte-addressed reads and writes over a fixed size.
/// Implemented by VMFS virtual disks (thin, linked clones) and by plain files; served to QEMU and other
/// clients by the NBD server. Implementations must be safe for concurrent calls on disjoint or overlapping
/// ranges (the NBD server keeps many requests in flight); ordering between overlapping writes in flight
/// at the same time is the client's business, as on a real disk.
/// </summary>
public interface IBlockDevice : IDisposable
{
    /// <summary>Size in bytes as the guest sees it (the provisioned size of a thin disk).</summary>
    long Size { get; }

    /// <summary>True for clone bases and other exports that refuse writes.</summary>
    bool IsReadOnly { get; }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; holes read as zeros.</summary>
    void Read(long offset, Span<byte> buffer);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>; with <paramref name="forceUnitAccess"/> it is durable on return.</summary>
    void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess);

    /// <summary>Makes every completed write durable.</summary>
    void Flush();

    /// <summary>Discards a range (a hint: afterwards it reads as zeros or as before, never as anything else).</summary>
    void Trim(long offset, long length);

    /// <summary>Makes a range read as zeros; <paramref name="mayDeallocate"/> allows punching holes to get there.</summary>
    void WriteZeroes(long offset, long length, bool mayDeallocate);

    /// <summary>
    /// Describes allocation of [offset, offset+length) as consecutive extents that together cover the range
    /// (the last may be cut at the end of the device). Used for NBD base:allocation block status.
    /// </summary>
    IReadOnlyList<BlockExtent> GetExtents(long offset, long length);
}

/// <summary>A run of bytes with one allocation state.</summary>
/// <param name="Offset">Start, in bytes.</param>
/// <param name="Length">Length, in bytes.</param>
/// <param name="IsHole">Not allocated: reading returns zeros and no storage backs it.</param>
/// <param name="IsZero">Known to read as zeros (always true for holes).</param>
public readonly record struct BlockExtent(long Offset, long Length, bool IsHole, bool IsZero);
