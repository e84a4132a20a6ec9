using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Storage;

/// <summary>
/// A datastore disk exported to an incoming migration's QEMU before this host holds its lease. QEMU needs the
/// export to exist (it connects when it starts) and to be writable (a read-only NBD export fails the open of a
/// read-write drive), but nothing may reach the disk until the lease is this host's: until
/// <see cref="Activate"/> every request is refused (the NBD client sees an error, the disk is not touched).
/// QEMU does not send any while the block layer is inactive (incoming, late block activation), so the refusal
/// is a safety net, not a path taken.
/// </summary>
internal sealed class LeaseGatedDisk(string description, long size, bool readOnly) : IBlockDevice
{
    private VirtualDisk? _disk;

    public long Size { get; } = size;

    public bool IsReadOnly { get; } = readOnly;

    /// <summary>The leased disk once the lease was taken; null before.</summary>
    public VirtualDisk? Disk => Volatile.Read(ref _disk);

    /// <summary>Lets requests through to the disk opened under this host's lease.</summary>
    public void Activate(VirtualDisk disk)
    {
        if (disk.Size != Size)
        {
            throw new VmkernelException($"{description}: the disk is {disk.Size} bytes now but was {Size} when the migration was prepared; it changed during the migration");
        }
        Volatile.Write(ref _disk, disk);
    }

    public void Read(long offset, Span<byte> buffer) => Open().Read(offset, buffer);

    public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess) => Open().Write(offset, data, forceUnitAccess);

    public void Flush() => Open().Flush();

    public void Trim(long offset, long length) => Open().Trim(offset, length);

    public void WriteZeroes(long offset, long length, bool mayDeallocate) => Open().WriteZeroes(offset, length, mayDeallocate);

    public IReadOnlyList<BlockExtent> GetExtents(long offset, long length) => Open().GetExtents(offset, length);

    /// <summary>The leased disk is the storage stack's to release; the gate owns nothing.</summary>
    public void Dispose()
    {
    }

    private VirtualDisk Open() => Disk
        ?? throw new UnauthorizedAccessException($"{description} is not this host's yet: the migration has not handed its lease over");
}
