using Microsoft.Win32.SafeHandles;

namespace Vmk.Vmkernel.Storage;

/// <summary>
/// What a VM's disk export serves: the disk, until <see cref="Revoke"/>. A live migration's source revokes its
/// exports at completion and releases the leases right after; that must not wait for the NBD connection threads
/// to be scheduled and wind down (milliseconds on a busy host, all of them in the guest's pause). Revoking refuses
/// every new request at once and returns when the ones already inside have finished, so no write of this host
/// can reach the disk after the lease is released; the connections are cut afterwards.
/// </summary>
internal sealed class RevocableDisk(IBlockDevice inner, string description) : IFileBackedBlockDevice
{
    private int _inside;
    private volatile bool _revoked;

    public long Size => inner.Size;

    public bool IsReadOnly => inner.IsReadOnly;

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
        Enter();
        try
        {
            inner.Read(offset, buffer);
        }
        finally
        {
            Exit();
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess)
    {
        Enter();
        try
        {
            inner.Write(offset, data, forceUnitAccess);
        }
        finally
        {
            Exit();
        }
    }

    public void Flush()
    {
        Enter();
        try
        {
            inner.Flush();
        }
        finally
        {
            Exit();
        }
    }

    public void Trim(long offset, long length)
    {
        Enter();
        try
        {
            inner.Trim(offset, length);
        }
        finally
        {
            Exit();
        }
    }

    public void WriteZeroes(long offset, long length, bool mayDeallocate)
    {
        Enter();
        try
        {
            inner.WriteZeroes(offset, length, mayDeallocate);
        }
        finally
        {
            Exit();
        }
    }

    public IReadOnlyList<BlockExtent> GetExtents(long offset, long length)
    {
        Enter();
        try
        {
            return inner.GetExtents(offset, length);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Zero-copy reads go on while the export is served (a read cannot harm the disk); none is mapped once revoked.</summary>
    public bool TryMapToFile(long offset, long length, out SafeFileHandle file, out long fileOffset)
    {
        if (!_revoked && inner is IFileBackedBlockDevice mapped)
        {
            return mapped.TryMapToFile(offset, length, out file, out fileOffset);
        }
        file = null!;
        fileOffset = 0;
        return false;
    }

    /// <summary>The disk is the storage stack's to release; the wrapper owns nothing.</summary>
    public void Dispose()
    {
    }

    private void Enter()
    {
        Interlocked.Increment(ref _inside);
        if (_revoked)
        {
            Exit();
            throw new UnauthorizedAccessException($"{description} was handed over to another host: this host no longer serves it");
        }
    }

    private void Exit() => Interlocked.Decrement(ref _inside);
}
