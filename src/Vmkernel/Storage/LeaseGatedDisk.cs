using Microsoft.Win32.SafeHandles;

namespace Vmk.Vmkernel.Storage;

/// <summary>
/// What a VM's datastore disk export serves: the disk, only while this host holds its lease.
/// <list type="bullet">
/// <item>An incoming migration's QEMU needs the export to exist (it connects when it starts) and to be writable (a
/// read-only NBD export fails the open of a read-write drive), but nothing may reach the disk until the lease is
/// this host's: until <see cref="Activate"/> every request is refused (the NBD client sees an error, the disk is not
/// touched). QEMU does not send any while the block layer is inactive (incoming, late block activation), so the
/// refusal is a safety net, not a path taken. A VM started here is activated at once.</item>
/// <item>A live migration's source revokes the export at completion and releases the lease right after; that must
/// not wait for the NBD connection threads to be scheduled and wind down (milliseconds on a busy host, all of them
/// in the guest's pause). <see cref="Revoke"/> refuses every new request at once and returns when the ones already
/// inside have finished, so no write of this host can reach the disk after the release; the connections are cut
/// afterwards.</item>
/// </list>
/// </summary>
internal sealed class LeaseGatedDisk(string description, long size, bool readOnly) : IFileBackedBlockDevice
{
    private IBlockDevice? _disk;
    private int _inside;
    private volatile bool _revoked;

    public long Size { get; } = size;

    public bool IsReadOnly { get; } = readOnly;

    /// <summary>Lets requests through to the disk opened under this host's lease.</summary>
    public void Activate(IBlockDevice disk)
    {
        if (disk.Size != Size)
        {
            throw new VmkernelException($"{description}: the disk is {disk.Size} bytes now but was {Size} when the migration was prepared; it changed during the migration");
        }
        Volatile.Write(ref _disk, disk);
    }

    /// <summary>Refuses new requests and waits for those in progress; idempotent.</summary>
    public void Revoke()
    {
        _revoked = true;
        Interlocked.MemoryBarrier(); // paired with the increment in Enter: a request either sees the flag or is counted here
        var spin = new SpinWait();
        while (Volatile.Read(ref _inside) != 0)
        {
            spin.SpinOnce();
        }
    }

    public void Read(long offset, Span<byte> buffer)
    {
        var disk = Enter();
        try
        {
            disk.Read(offset, buffer);
        }
        finally
        {
            Exit();
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess)
    {
        var disk = Enter();
        try
        {
            disk.Write(offset, data, forceUnitAccess);
        }
        finally
        {
            Exit();
        }
    }

    public void Flush()
    {
        var disk = Enter();
        try
        {
            disk.Flush();
        }
        finally
        {
            Exit();
        }
    }

    public void Trim(long offset, long length)
    {
        var disk = Enter();
        try
        {
            disk.Trim(offset, length);
        }
        finally
        {
            Exit();
        }
    }

    public void WriteZeroes(long offset, long length, bool mayDeallocate)
    {
        var disk = Enter();
        try
        {
            disk.WriteZeroes(offset, length, mayDeallocate);
        }
        finally
        {
            Exit();
        }
    }

    public IReadOnlyList<BlockExtent> GetExtents(long offset, long length)
    {
        var disk = Enter();
        try
        {
            return disk.GetExtents(offset, length);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Zero-copy reads while the disk is served (a read cannot harm it); none before activation or once revoked.</summary>
    public bool TryMapToFile(long offset, long length, out SafeFileHandle file, out long fileOffset)
    {
        if (!_revoked && Volatile.Read(ref _disk) is IFileBackedBlockDevice mapped)
        {
            return mapped.TryMapToFile(offset, length, out file, out fileOffset);
        }
        file = null!;
        fileOffset = 0;
        return false;
    }

    /// <summary>The leased disk is the storage stack's to release; the gate owns nothing.</summary>
    public void Dispose()
    {
    }

    private IBlockDevice Enter()
    {
        Interlocked.Increment(ref _inside);
        if (_revoked)
        {
            Exit();
            throw new UnauthorizedAccessException($"{description} was handed over to another host: this host no longer serves it");
        }
        if (Volatile.Read(ref _disk) is not { } disk)
        {
            Exit();
            throw new UnauthorizedAccessException($"{description} is not this host's yet: the migration has not handed its lease over");
        }
        return disk;
    }

    private void Exit() => Interlocked.Decrement(ref _inside);
}
