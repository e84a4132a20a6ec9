using System.Buffers.Binary;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A sector of a file's block map (the pointer blocks). Block maps live in ordinary data blocks ("map
/// blocks") listed in the descriptor; each map block is B/S sectors of this form:
/// <code>
///   0  header (magic "VMAP", crc32c, selfOffset)
///  16  u64  file uid (a map sector of another file, or of a deleted one, is detected)
///  24  u32  index of this sector within the file's map
///  28  u32  reserved
///  32  u32[(S-32)/4] entries: 0 = hole, else physical data block + 1
/// </code>
/// </summary>
internal static class BlockMapSector
{
    public const int EntriesStart = 32;

    public static int EntriesPerSector(int sectorSize) => (sectorSize - EntriesStart) / 4;

    public static void Init(Span<byte> sector, long selfOffset, ulong fileUid, int mapSectorIndex)
    {
        sector.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(sector[16..], fileUid);
        BinaryPrimitives.WriteInt32LittleEndian(sector[24..], mapSectorIndex);
        MetadataSector.Seal(sector, MetadataSector.BlockMapMagic, selfOffset);
    }

    public static void Verify(ReadOnlySpan<byte> sector, long selfOffset, ulong fileUid, int mapSectorIndex, string fileName)
    {
        var structure = $"block map sector {mapSectorIndex} of disk '{fileName}'";
        MetadataSector.Verify(sector, MetadataSector.BlockMapMagic, selfOffset, structure);
        if (BinaryPrimitives.ReadUInt64LittleEndian(sector[16..]) != fileUid ||
            BinaryPrimitives.ReadInt32LittleEndian(sector[24..]) != mapSectorIndex)
        {
            throw VmfsException.Corrupt(structure, selfOffset, "it belongs to another file or map position");
        }
    }

    public static uint GetEntry(ReadOnlySpan<byte> sector, int i) =>
        BinaryPrimitives.ReadUInt32LittleEndian(sector[(EntriesStart + (4 * i))..]);

    public static void SetEntry(Span<byte> sector, int i, uint value, long selfOffset)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(sector[(EntriesStart + (4 * i))..], value);
        MetadataSector.Seal(sector, MetadataSector.BlockMapMagic, selfOffset);
    }
}
