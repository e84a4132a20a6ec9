namespace Vmk.Vmkernel.Vmfs;

/// <summary>Changes a disk's block map and size inside one metadata transaction.</summary>
internal sealed class BlockMapEditor
{
    private readonly VmfsDatastore _ds;
    private readonly MetadataTransaction _txn;
    private readonly FileDescriptor _fd;

    public BlockMapEditor(VmfsDatastore ds, MetadataTransaction txn, FileDescriptor fd)
    {
        _ds = ds;
        _txn = txn;
        _fd = fd;
    }

    private Superblock Sb => _ds.Sb;

    /// <summary>Stages new values for map entries (value 0 = hole, else physical block + 1).</summary>
    public static void SetEntries(Superblock sb, MetadataTransaction txn, FileDescriptor fd, IEnumerable<KeyValuePair<long, uint>> entries)
    {
        var perSector = DiskMap.EntriesPerSector(sb);
        foreach (var group in entries.GroupBy(e => (int)(e.Key / perSector)))
        {
            var offset = DiskMap.MapSectorOffset(sb, fd, group.Key);
            var sector = txn.Get(offset);
            BlockMapSector.Verify(sector, offset, fd.Uid, group.Key, fd.Name);
            foreach (var (block, value) in group)
            {
                BlockMapSector.SetEntry(sector, (int)(block % perSector), value, offset);
            }

            txn.Put(offset, sector);
        }
    }

    public FileDescriptor Resize(long newSize, IReadOnlyList<FileDescriptor> all)
    {
        var oldBlocks = DiskMap.BlocksFor(Sb, _fd.SizeBytes);
        var newBlocks = DiskMap.BlocksFor(Sb, newSize);
        var needMaps = DiskMap.MapBlocksFor(Sb, newSize);
        var maps = _fd.MapBlocks.ToList();
        var allocator = new BlockAllocator(Sb, _txn);
        long delta = 0;
        if (newBlocks > oldBlocks)
        {
            var extraMaps = Math.Max(0, needMaps - maps.Count);
            var grow = newBlocks - oldBlocks;
            _ds.CheckSpace(allocator, all, _fd.Name, extraMaps + (_fd.Thin ? 0 : grow), grow + extraMaps);
            var newMaps = allocator.Allocate(extraMaps);
            _ds.WriteNewMapBlocks(_fd.Uid, newMaps, maps.Count, []);
            maps.AddRange(newMaps);
            if (!_fd.Thin)
            {
                var data = allocator.Allocate(grow);
                _ds.ZeroBlocks(data);
                var grown = _fd with { MapBlocks = maps.ToArray() };
                SetEntries(Sb, _txn, grown, data.Select((b, i) => new KeyValuePair<long, uint>(oldBlocks + i, b + 1)));
                delta = data.Length;
            }
        }
        else
        {
            var entries = DiskMap.LoadEntries(_ds.Io, _fd);
            var freed = new List<KeyValuePair<long, uint>>();
            for (var b = newBlocks; b < oldBlocks; b++)
            {
                if (entries[b] != 0)
                {
                    freed.Add(new KeyValuePair<long, uint>(b, entries[b] - 1));
                }
            }

            allocator.Free(freed.Select(f => f.Value), $"disk '{_fd.Name}'");
            var perMapBlock = (long)DiskMap.SectorsPerMapBlock(Sb) * DiskMap.EntriesPerSector(Sb);
            // Entries in map blocks that are freed with the shrink need no clearing: a later grow gets fresh ones.
            SetEntries(Sb, _txn, _fd, freed.Where(f => f.Key / perMapBlock < needMaps).Select(f => new KeyValuePair<long, uint>(f.Key, 0)));
            if (maps.Count > needMaps)
            {
                allocator.Free(maps.Skip(needMaps), $"disk '{_fd.Name}' (block map)");
                maps.RemoveRange(needMaps, maps.Count - needMaps);
            }

            delta = -freed.Count;
            var tail = newSize % Sb.BlockSize;
            if (tail != 0 && entries[newBlocks - 1] != 0)
            {
                // Bytes past the new end must read as zeros if the disk grows again.
                _ds.EnsureCanWrite();
                _ds.Device.Zero(Sb.DataBlockOffset(entries[newBlocks - 1] - 1) + tail, Sb.BlockSize - tail);
            }
        }

        return _fd with { SizeBytes = newSize, AllocatedBlocks = _fd.AllocatedBlocks + delta, MapBlocks = maps.ToArray() };
    }
}
