namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A virtual disk's block map in memory: entry i is 0 for a hole or physical data block + 1. A linked clone's
/// map has its base's map as <see cref="Parent"/> (bases are read-only, so their maps never change under it).
/// </summary>
internal sealed class DiskMap
{
    private DiskMap(FileDescriptor descriptor, uint[] entries, DiskMap? parent)
    {
        Descriptor = descriptor;
        Entries = entries;
        Parent = parent;
    }

    public FileDescriptor Descriptor { get; set; }

    public uint[] Entries { get; set; }

    public DiskMap? Parent { get; }

    public static int EntriesPerSector(Superblock sb) => BlockMapSector.EntriesPerSector(sb.SectorSize);

    public static int SectorsPerMapBlock(Superblock sb) => sb.BlockSize / sb.SectorSize;

    public static long BlocksFor(Superblock sb, long sizeBytes) => (sizeBytes + sb.BlockSize - 1) / sb.BlockSize;

    public static int MapSectorsFor(Superblock sb, long sizeBytes) => (int)((BlocksFor(sb, sizeBytes) + EntriesPerSector(sb) - 1) / EntriesPerSector(sb));

    public static int MapBlocksFor(Superblock sb, long sizeBytes) => Math.Max(1, (MapSectorsFor(sb, sizeBytes) + SectorsPerMapBlock(sb) - 1) / SectorsPerMapBlock(sb));

    public static long MaxDiskBytes(Superblock sb) => (long)FileDescriptor.MaxMapBlocks * SectorsPerMapBlock(sb) * EntriesPerSector(sb) * sb.BlockSize;

    public static long MapSectorOffset(Superblock sb, FileDescriptor fd, int mapSector) =>
        sb.DataBlockOffset(fd.MapBlocks[mapSector / SectorsPerMapBlock(sb)]) + ((long)(mapSector % SectorsPerMapBlock(sb)) * sb.SectorSize);

    /// <summary>Loads a disk's map and, for a linked clone, its base chain.</summary>
    public static DiskMap Load(MetadataIo io, FileDescriptor fd, Func<int, FileDescriptor> descriptorAt, int depth = 0)
    {
        if (depth > 32)
        {
            throw VmfsException.Corrupt($"file descriptor {fd.Index} ('{fd.Name}')", io.Superblock.DescriptorSectorOffset(fd.Index), "its linked-clone chain is longer than 32 (a loop?)");
        }

        DiskMap? parent = null;
        if (fd.IsClone)
        {
            var p = descriptorAt((int)fd.ParentIndex);
            if (!p.InUse || p.Uid != fd.ParentUid)
            {
                throw VmfsException.Corrupt($"file descriptor {fd.Index} ('{fd.Name}')", io.Superblock.DescriptorSectorOffset(fd.Index),
                    $"its base disk (descriptor {fd.ParentIndex}) no longer exists");
            }

            parent = Load(io, p, descriptorAt, depth + 1);
        }

        return new DiskMap(fd, LoadEntries(io, fd), parent);
    }

    public static uint[] LoadEntries(MetadataIo io, FileDescriptor fd)
    {
        var sb = io.Superblock;
        var blocks = BlocksFor(sb, fd.SizeBytes);
        var entries = new uint[blocks];
        var perSector = EntriesPerSector(sb);
        var sectors = MapSectorsFor(sb, fd.SizeBytes);
        var perMapBlock = SectorsPerMapBlock(sb);
        if (fd.MapBlocks.Length * perMapBlock < sectors)
        {
            throw VmfsException.Corrupt($"file descriptor {fd.Index} ('{fd.Name}')", sb.DescriptorSectorOffset(fd.Index), "it has too few block-map blocks for its size");
        }

        for (var first = 0; first < sectors; first += perMapBlock)
        {
            var count = Math.Min(perMapBlock, sectors - first);
            var offset = MapSectorOffset(sb, fd, first);
            var data = io.ReadSectors(offset, count);
            for (var k = 0; k < count; k++)
            {
                var sector = data.AsSpan(k * sb.SectorSize, sb.SectorSize);
                BlockMapSector.Verify(sector, offset + ((long)k * sb.SectorSize), fd.Uid, first + k, fd.Name);
                var baseEntry = (long)(first + k) * perSector;
                for (var e = 0; e < perSector && baseEntry + e < blocks; e++)
                {
                    var value = BlockMapSector.GetEntry(sector, e);
                    if (value > sb.DataBlocks)
                    {
                        throw VmfsException.Corrupt($"block map sector {first + k} of disk '{fd.Name}'", offset + ((long)k * sb.SectorSize),
                            $"entry {e} points at block {value - 1}, past the end of the datastore");
                    }

                    entries[baseEntry + e] = value;
                }
            }
        }

        return entries;
    }

    /// <summary>The physical block (+1) that holds virtual block <paramref name="block"/>, looking through bases; 0 = zeros.</summary>
    public uint Resolve(long block)
    {
        for (var m = this; m is not null; m = m.Parent)
        {
            if (block >= m.Entries.Length)
            {
                return 0;
            }

            var e = Volatile.Read(ref m.Entries[block]);
            if (e != 0)
            {
                return e;
            }
        }

        return 0;
    }
}
