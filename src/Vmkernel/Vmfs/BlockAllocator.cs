using System.Numerics;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Allocates and frees data blocks in the bitmap, inside one metadata transaction (so under the metadata
/// lock). First fit from the start keeps disks contiguous. Every bitmap sector is checked before use.
/// </summary>
internal sealed class BlockAllocator
{
    private readonly Superblock _sb;
    private readonly MetadataTransaction _txn;
    private readonly byte[] _bitmap;
    private long _used;

    public BlockAllocator(Superblock sb, MetadataTransaction txn)
    {
        _sb = sb;
        _txn = txn;
        _bitmap = txn.GetRange(sb.BitmapOffset, sb.BitmapSectors);
        for (var i = 0; i < sb.BitmapSectors; i++)
        {
            var sector = Sector(i);
            BitmapSector.Verify(sector, sb.BitmapSectorOffset(i), i);
            foreach (var b in sector[BitmapSector.BitsStart..])
            {
                _used += BitOperations.PopCount(b);
            }
        }
    }

    public long FreeBlocks => _sb.DataBlocks - _used;

    public uint[] Allocate(long count)
    {
        if (count == 0)
        {
            return [];
        }

        if (count > FreeBlocks)
        {
            throw new VmfsException(VmfsErrorCode.NoSpace, $"the datastore has {FreeBlocks} free blocks; {count} are needed. Nothing was changed.");
        }

        var result = new uint[count];
        var found = 0;
        var bits = _sb.BitsPerBitmapSector;
        for (var i = 0; i < _sb.BitmapSectors && found < count; i++)
        {
            var sector = Sector(i);
            var dirty = false;
            for (var bit = 0; bit < bits && found < count; bit++)
            {
                var block = ((long)i * bits) + bit;
                if (block >= _sb.DataBlocks)
                {
                    break;
                }

                if (!BitmapSector.Get(sector, bit))
                {
                    BitmapSector.Set(sector, bit, true);
                    result[found++] = (uint)block;
                    dirty = true;
                }
            }

            if (dirty)
            {
                Stage(i);
            }
        }

        _used += count;
        return result;
    }

    public void Free(IEnumerable<uint> blocks, string owner)
    {
        var bits = _sb.BitsPerBitmapSector;
        foreach (var group in blocks.GroupBy(b => (int)(b / bits)))
        {
            var sector = Sector(group.Key);
            foreach (var block in group)
            {
                var bit = (int)(block % bits);
                if (block >= _sb.DataBlocks || !BitmapSector.Get(sector, bit))
                {
                    throw VmfsException.Corrupt($"allocation bitmap sector {group.Key}", _sb.BitmapSectorOffset(group.Key),
                        $"block {block} of {owner} is marked free although the disk uses it");
                }

                BitmapSector.Set(sector, bit, false);
                _used--;
            }

            Stage(group.Key);
        }
    }

    private Span<byte> Sector(int index) => _bitmap.AsSpan(index * _sb.SectorSize, _sb.SectorSize);

    private void Stage(int index)
    {
        var offset = _sb.BitmapSectorOffset(index);
        var sector = Sector(index);
        BitmapSector.Reseal(sector, offset);
        _txn.Put(offset, sector.ToArray());
    }
}
