using System.Buffers.Binary;
using System.Text;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A file descriptor: one sector per virtual disk in the descriptor table, which doubles as the flat directory
/// (names are unique across the table). Descriptor i is guarded by resource lease i+1.
/// <code>
///   0  header (magic "VDSC", crc32c, selfOffset)
///  16  u32  flags (1 = in use, 2 = thin, 4 = read-only base of linked clones)
///  20  u32  parent descriptor index (0xFFFFFFFF = none; a linked clone reads holes through to it)
///  24  u64  provisioned size, bytes
///  32  u64  allocated data blocks
///  40  u64  file uid (random per creation; map sectors carry it, and a reused index is told apart)
///  48  u64  parent file uid
///  56  i64  created, unix ms
///  64  u32  number of linked clones whose parent this is
///  68  u32  number of block-map blocks
///  72  u16  name length, 74 u8[128] name (UTF-8)
/// 204  u32[64] block-map block numbers (data blocks that hold this file's block map)
/// </code>
/// </summary>
internal sealed record FileDescriptor
{
    public const int MaxNameBytes = 128;
    public const int MaxMapBlocks = 64;
    public const uint NoParent = uint.MaxValue;
    public const uint FlagInUse = 1;
    public const uint FlagThin = 2;
    public const uint FlagReadOnlyBase = 4;

    public int Index { get; init; }
    public uint Flags { get; init; }
    public uint ParentIndex { get; init; } = NoParent;
    public long SizeBytes { get; init; }
    public long AllocatedBlocks { get; init; }
    public ulong Uid { get; init; }
    public ulong ParentUid { get; init; }
    public long CreatedUnixMs { get; init; }
    public int ChildCount { get; init; }
    public string Name { get; init; } = "";
    public uint[] MapBlocks { get; init; } = [];

    public bool InUse => (Flags & FlagInUse) != 0;
    public bool Thin => (Flags & FlagThin) != 0;
    public bool ReadOnlyBase => (Flags & FlagReadOnlyBase) != 0;
    public bool IsClone => ParentIndex != NoParent;

    public void Write(Span<byte> sector, long selfOffset)
    {
        sector.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(sector[16..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(sector[20..], ParentIndex);
        BinaryPrimitives.WriteInt64LittleEndian(sector[24..], SizeBytes);
        BinaryPrimitives.WriteInt64LittleEndian(sector[32..], AllocatedBlocks);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[40..], Uid);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[48..], ParentUid);
        BinaryPrimitives.WriteInt64LittleEndian(sector[56..], CreatedUnixMs);
        BinaryPrimitives.WriteInt32LittleEndian(sector[64..], ChildCount);
        BinaryPrimitives.WriteInt32LittleEndian(sector[68..], MapBlocks.Length);
        var name = Encoding.UTF8.GetBytes(Name);
        BinaryPrimitives.WriteUInt16LittleEndian(sector[72..], (ushort)name.Length);
        name.CopyTo(sector[74..]);
        for (var i = 0; i < MapBlocks.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(sector[(204 + (4 * i))..], MapBlocks[i]);
        }

        MetadataSector.Seal(sector, MetadataSector.DescriptorMagic, selfOffset);
    }

    public static FileDescriptor Read(ReadOnlySpan<byte> sector, long selfOffset, int index)
    {
        MetadataSector.Verify(sector, MetadataSector.DescriptorMagic, selfOffset, $"file descriptor {index}");
        var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(sector[72..]);
        var mapCount = BinaryPrimitives.ReadInt32LittleEndian(sector[68..]);
        if (nameLength > MaxNameBytes || mapCount is < 0 or > MaxMapBlocks)
        {
            throw VmfsException.Corrupt($"file descriptor {index}", selfOffset, "name length or map block count out of range");
        }

        var maps = new uint[mapCount];
        for (var i = 0; i < mapCount; i++)
        {
            maps[i] = BinaryPrimitives.ReadUInt32LittleEndian(sector[(204 + (4 * i))..]);
        }

        return new FileDescriptor
        {
            Index = index,
            Flags = BinaryPrimitives.ReadUInt32LittleEndian(sector[16..]),
            ParentIndex = BinaryPrimitives.ReadUInt32LittleEndian(sector[20..]),
            SizeBytes = BinaryPrimitives.ReadInt64LittleEndian(sector[24..]),
            AllocatedBlocks = BinaryPrimitives.ReadInt64LittleEndian(sector[32..]),
            Uid = BinaryPrimitives.ReadUInt64LittleEndian(sector[40..]),
            ParentUid = BinaryPrimitives.ReadUInt64LittleEndian(sector[48..]),
            CreatedUnixMs = BinaryPrimitives.ReadInt64LittleEndian(sector[56..]),
            ChildCount = BinaryPrimitives.ReadInt32LittleEndian(sector[64..]),
            Name = Encoding.UTF8.GetString(sector.Slice(74, nameLength)),
            MapBlocks = maps,
        };
    }

    public static FileDescriptor Empty(int index) => new() { Index = index };
}
