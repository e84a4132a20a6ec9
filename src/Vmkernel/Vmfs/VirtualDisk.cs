using System.Numerics;
using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// An open virtual disk on a VMFS datastore, holding its lease until disposed.
/// <para>
/// Hot path (a block already allocated to this disk): one lookup in the cached block map and one pwrite to the
/// device, no metadata I/O and no lock I/O; the lease is checked by state (this host has not fenced itself).
/// First writes to a hole allocate zero-filled (or, for a linked clone, base-filled) blocks in one journaled
/// change, written before the change that makes them visible commits.
/// </para>
/// <para>
/// Freeing blocks (trim, write-zeroes) must not race with a read or write that already looked a block up:
/// those run inside an epoch (two counters); a free clears the map entries, advances the epoch and waits until
/// the previous epoch has drained before the blocks can be reused.
/// </para>
/// </summary>
public sealed class VirtualDisk : IBlockDevice
{
    private const int StripeCount = 64;
    private readonly VmfsDatastore _ds;
    private readonly DiskMap _map;
    private readonly VmfsLease _lease;
    private readonly VmfsDevice _device;
    private readonly long _dataOffset;
    private readonly int _blockSize;
    private readonly int _blockShift;
    private readonly long _blockMask;
    private readonly Lock _allocLock = new();
    private readonly Lock[] _stripes;
    private readonly long[] _active = new long[2];
    private long _epoch;
    private int _disposed;

    // 1 once a write through this disk has completed and no flush has started since. Set after the write, cleared
    // before the flush: a write that completed before a flush request is always covered by it.
    private int _unflushed;

    internal VirtualDisk(VmfsDatastore ds, DiskMap map, VmfsLease lease)
    {
        _ds = ds;
        _map = map;
        _lease = lease;
        _device = ds.Device;
        _dataOffset = ds.Sb.DataOffset;
        _blockSize = ds.Sb.BlockSize;
        _blockShift = BitOperations.Log2((uint)_blockSize);
        _blockMask = _blockSize - 1;
        _stripes = Enumerable.Range(0, StripeCount).Select(_ => new Lock()).ToArray();
        Size = map.Descriptor.SizeBytes;
    }

    public string Name => _map.Descriptor.Name;

    public long Size { get; }

    public bool IsReadOnly => _lease.Mode != LeaseMode.Exclusive;

    public LeaseMode LeaseMode => _lease.Mode;

    /// <summary>The lease version (generation) under which this disk is open.</summary>
    public ulong LeaseVersion => _lease.Version;

    public int BlockSize => _blockSize;

    /// <summary>Bytes of datastore space this disk's own blocks take (not counting its base).</summary>
    public long AllocatedBytes => _map.Descriptor.AllocatedBlocks * (long)_blockSize;

    public void Read(long offset, Span<byte> buffer)
    {
        CheckOpen();
        CheckRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            var block = offset >> _blockShift;
            var inBlock = offset & _blockMask;
            var n = (int)Math.Min(_blockSize - inBlock, buffer.Length);
            var part = buffer[..n];
            var parity = (int)(Volatile.Read(ref _epoch) & 1);
            Interlocked.Increment(ref _active[parity]);
            try
            {
                var own = Volatile.Read(ref _map.Entries[block]);
                if (own != 0)
                {
                    _device.Read(PhysicalOffset(own, inBlock), part);
                }
                else if (_map.Parent?.Resolve(block) is { } fromBase and not 0)
                {
                    _device.Read(PhysicalOffset(fromBase, inBlock), part);
                }
                else
                {
                    part.Clear();
                }
            }
            finally
            {
                Interlocked.Decrement(ref _active[parity]);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess)
    {
        CheckWritable();
        CheckRange(offset, data.Length);
        while (!data.IsEmpty)
        {
            var block = offset >> _blockShift;
            var inBlock = offset & _blockMask;
            var n = (int)Math.Min(_blockSize - inBlock, data.Length);
            if (!TryWriteAllocated(block, inBlock, data[..n]))
            {
                n = AllocateAndWrite(offset, data);
            }

            data = data[n..];
            offset += n;
        }

        if (forceUnitAccess)
        {
            _device.Flush();
        }
        else
        {
            Volatile.Write(ref _unflushed, 1);
        }
    }

    /// <summary>
    /// Makes every completed write durable. Without writes since the last flush there is nothing to make durable and
    /// the device is not asked: a migrating VM's QEMU flushes when the source stops the guest, inside its pause, where
    /// an fdatasync waited for other writers' journal commits on the datastore's file system (up to 30 ms here).
    /// </summary>
    public void Flush()
    {
        CheckOpen();
        if (Interlocked.Exchange(ref _unflushed, 0) == 0)
        {
            return;
        }

        try
        {
            _device.Flush();
        }
        catch
        {
            Volatile.Write(ref _unflushed, 1);
            throw;
        }
    }

    /// <summary>Deallocates whole blocks in the range that only this disk backs; partial blocks are left as they are.</summary>
    public void Trim(long offset, long length)
    {
        CheckWritable();
        CheckRange(offset, length);
        Deallocate(offset, length);
    }

    public void WriteZeroes(long offset, long length, bool mayDeallocate)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (mayDeallocate)
        {
            Deallocate(offset, length);
        }

        var end = offset + length;
        byte[]? zeros = null;
        while (offset < end)
        {
            var block = offset >> _blockShift;
            var inBlock = offset & _blockMask;
            var n = (int)Math.Min(_blockSize - inBlock, end - offset);
            if (_map.Resolve(block) != 0)
            {
                zeros ??= new byte[_blockSize];
                Write(offset, zeros.AsSpan(0, n), false);
            }

            offset += n;
        }
    }

    public IReadOnlyList<BlockExtent> GetExtents(long offset, long length)
    {
        CheckOpen();
        if (offset < 0 || length < 0 || offset > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, +{length}) is outside disk '{Name}' of {Size} bytes");
        }

        var end = Math.Min(Size, offset + length);
        var result = new List<BlockExtent>();
        while (offset < end)
        {
            var block = offset >> _blockShift;
            var hole = _map.Resolve(block) == 0;
            var start = offset;
            do
            {
                offset = Math.Min(end, (offset & ~_blockMask) + _blockSize);
                block++;
            }
            while (offset < end && (_map.Resolve(block) == 0) == hole);

            result.Add(new BlockExtent(start, offset - start, hole, hole));
        }

        return result;
    }

    /// <summary>
    /// Where byte <paramref name="offset"/> of this disk lives on the datastore device, or null for a hole
    /// (a linked clone's bytes still in its base count as that base's location). For diagnostics and benchmarks.
    /// </summary>
    public long? MapToDevice(long offset)
    {
        CheckOpen();
        CheckRange(offset, 0);
        var entry = _map.Resolve(offset >> _blockShift);
        return entry == 0 ? null : PhysicalOffset(entry, offset & _blockMask);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _lease.Dispose();
        }
    }

    private long PhysicalOffset(uint entry, long inBlock) => _dataOffset + ((long)(entry - 1) << _blockShift) + inBlock;

    private bool TryWriteAllocated(long block, long inBlock, ReadOnlySpan<byte> part)
    {
        var parity = (int)(Volatile.Read(ref _epoch) & 1);
        Interlocked.Increment(ref _active[parity]);
        try
        {
            var own = Volatile.Read(ref _map.Entries[block]);
            if (own == 0)
            {
                return false;
            }

            // The lease is checked by state right before the write: a fenced host stops here.
            using (EnterWrite())
            {
                var at = PhysicalOffset(own, inBlock);
                if (_device.IsAligned(at, part.Length))
                {
                    _device.Write(at, part);
                }
                else
                {
                    // Unaligned writes read-modify-write whole sectors; neighbours in one sector must not interleave.
                    lock (_stripes[(at / 4096) % StripeCount])
                    {
                        _device.Write(at, part);
                    }
                }
            }

            return true;
        }
        finally
        {
            Interlocked.Decrement(ref _active[parity]);
        }
    }

    /// <summary>Allocates the run of holes starting at <paramref name="offset"/> and writes into it; returns bytes consumed.</summary>
    private int AllocateAndWrite(long offset, ReadOnlySpan<byte> data)
    {
        var copy = data.ToArray();
        lock (_allocLock)
        {
            var first = offset >> _blockShift;
            if (Volatile.Read(ref _map.Entries[first]) != 0)
            {
                return 0; // another thread allocated it meanwhile: the caller retries the hot path
            }

            var lastByte = offset + copy.Length - 1;
            var last = first;
            while (last + 1 <= (lastByte >> _blockShift) && last + 1 - first < 64 && Volatile.Read(ref _map.Entries[last + 1]) == 0)
            {
                last++;
            }

            var count = (int)(last - first + 1);
            var consumed = (int)Math.Min(copy.Length, ((last + 1) << _blockShift) - offset);
            var physical = _ds.RunMetadata($"allocate {count} block(s) for disk '{Name}'", txn =>
            {
                var fd = _ds.ReadDescriptor(txn, _map.Descriptor.Index);
                if (!fd.InUse || fd.Uid != _map.Descriptor.Uid)
                {
                    throw new VmfsException(VmfsErrorCode.NotFound, $"disk '{Name}' no longer exists on the datastore.");
                }

                var blocks = new BlockAllocator(_ds.Sb, txn).Allocate(count);
                var buffer = _device.Rent(_blockSize);
                try
                {
                    for (var i = 0; i < count; i++)
                    {
                        var block = first + i;
                        var content = buffer.Span[.._blockSize];
                        var fromBase = _map.Parent?.Resolve(block) ?? 0;
                        if (fromBase != 0)
                        {
                            _device.Read(PhysicalOffset(fromBase, 0), content);
                        }
                        else
                        {
                            content.Clear();
                        }

                        var blockStart = block << _blockShift;
                        var from = Math.Max(offset, blockStart);
                        var to = Math.Min(offset + consumed, blockStart + _blockSize);
                        copy.AsSpan((int)(from - offset), (int)(to - from)).CopyTo(content[(int)(from - blockStart)..]);
                        using (EnterWrite())
                        {
                            _device.Write(PhysicalOffset(blocks[i] + 1, 0), content);
                        }
                    }
                }
                finally
                {
                    _device.Return(buffer);
                }

                VmfsFaultInjection.At("data-written");
                BlockMapEditor.SetEntries(_ds.Sb, txn, fd, blocks.Select((b, i) => new KeyValuePair<long, uint>(first + i, b + 1)));
                var updated = fd with { AllocatedBlocks = fd.AllocatedBlocks + count };
                _ds.PutDescriptor(txn, updated);
                return (blocks, updated);
            });

            for (var i = 0; i < count; i++)
            {
                Volatile.Write(ref _map.Entries[first + i], physical.blocks[i] + 1);
            }

            _map.Descriptor = physical.updated;
            return consumed;
        }
    }

    private void Deallocate(long offset, long length)
    {
        var firstWhole = (offset + _blockMask) >> _blockShift;
        var endWhole = (offset + length) >> _blockShift;
        if ((offset + length) == Size)
        {
            endWhole = (Size + _blockMask) >> _blockShift; // the partial last block counts as whole at the end of the disk
        }

        if (endWhole <= firstWhole)
        {
            return;
        }

        lock (_allocLock)
        {
            var victims = new List<(long Block, uint Entry)>();
            for (var b = firstWhole; b < endWhole; b++)
            {
                var own = _map.Entries[b];
                // A clone's hole shows its base; freeing a block the base also has would change what is read.
                if (own != 0 && (_map.Parent is null || _map.Parent.Resolve(b) == 0))
                {
                    victims.Add((b, own));
                }
            }

            if (victims.Count == 0)
            {
                return;
            }

            foreach (var (block, _) in victims)
            {
                Volatile.Write(ref _map.Entries[block], 0u);
            }

            var old = Interlocked.Increment(ref _epoch) - 1;
            var spin = new SpinWait();
            while (Volatile.Read(ref _active[old & 1]) != 0)
            {
                spin.SpinOnce();
            }

            try
            {
                foreach (var chunk in victims.Chunk(1024))
                {
                    _map.Descriptor = _ds.RunMetadata($"free {chunk.Length} block(s) of disk '{Name}'", txn =>
                    {
                        var fd = _ds.ReadDescriptor(txn, _map.Descriptor.Index);
                        new BlockAllocator(_ds.Sb, txn).Free(chunk.Select(v => v.Entry - 1), $"disk '{Name}'");
                        BlockMapEditor.SetEntries(_ds.Sb, txn, fd, chunk.Select(v => new KeyValuePair<long, uint>(v.Block, 0)));
                        var updated = fd with { AllocatedBlocks = fd.AllocatedBlocks - chunk.Length };
                        _ds.PutDescriptor(txn, updated);
                        return updated;
                    });
                }
            }
            catch
            {
                // Whatever did not commit is still allocated on disk: show it again.
                var current = DiskMap.LoadEntries(_ds.Io, _ds.ReadDescriptorNow(_map.Descriptor.Index));
                foreach (var (block, _) in victims)
                {
                    Volatile.Write(ref _map.Entries[block], current[block]);
                }

                throw;
            }
        }
    }

    private void CheckOpen()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new VmfsException(VmfsErrorCode.Closed, $"disk '{Name}' has been closed.");
        }
    }

    /// <summary>
    /// Admits one device write: counts it in flight with the host (fencing waits for it) and then checks the
    /// lease. Throws, uncounted, when the disk may not be written; disposing the result ends the write.
    /// </summary>
    private AdmittedWrite EnterWrite()
    {
        var gate = _ds.WriteGate;
        if (gate.TryEnterWrite())
        {
            if (_lease.IsValid)
            {
                return new AdmittedWrite(gate);
            }

            gate.ExitWrite();
        }

        CheckWritable();
        // The heartbeat's deadline passed between the two checks (or a renewal came just after): refuse anyway.
        throw new VmfsException(VmfsErrorCode.Fenced, $"disk '{Name}' may not be written: this host's lease on it is no longer valid.");
    }

    private void CheckWritable()
    {
        CheckOpen();
        if (IsReadOnly)
        {
            throw new VmfsException(VmfsErrorCode.InvalidState, $"disk '{Name}' is open {(_lease.Mode == LeaseMode.SharedRead ? "shared-read" : "read-only")}; open it Exclusive to write.");
        }

        _ds.EnsureCanWrite();
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset + length > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, +{length}) is outside disk '{Name}' of {Size} bytes");
        }
    }
}
