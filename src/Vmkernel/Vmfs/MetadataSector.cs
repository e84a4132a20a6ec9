using System.Buffers.Binary;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The header every metadata sector starts with, and its checksum. Layout (little-endian):
/// <code>
///   0  u32  magic        structure type ("VSBK" superblock, "VHBT" heartbeat slot, ...)
///   4  u32  crc32c       over bytes [0,4) and [8, length) of the sector
///   8  u64  selfOffset   the sector's own byte offset on the device
///  16  ...  body
/// </code>
/// The self offset makes every sector self-describing: a sector written to the wrong place, or a journal
/// image, knows where it belongs, and corruption reports can name the offset without context.
/// </summary>
internal static class MetadataSector
{
    public const int HeaderSize = 16;

    public const uint SuperblockMagic = 0x4B425356;  // "VSBK"
    public const uint HeartbeatMagic = 0x54424856;   // "VHBT"
    public const uint LeaderMagic = 0x444C4C56;      // "VLLD"
    public const uint BallotMagic = 0x4C424C56;      // "VLBL"
    public const uint JournalMagic = 0x484E4A56;     // "VJNH"
    public const uint BitmapMagic = 0x504D4256;      // "VBMP"
    public const uint DescriptorMagic = 0x43534456;  // "VDSC"
    public const uint BlockMapMagic = 0x50414D56;    // "VMAP"

    public static uint Magic(ReadOnlySpan<byte> sector) => BinaryPrimitives.ReadUInt32LittleEndian(sector);

    public static long SelfOffset(ReadOnlySpan<byte> sector) => BinaryPrimitives.ReadInt64LittleEndian(sector[8..]);

    public static uint Checksum(ReadOnlySpan<byte> sector) => ~Crc32C.Append(Crc32C.Append(~0u, sector[..4]), sector[8..]);

    /// <summary>Writes magic and self offset and seals the sector with its checksum.</summary>
    public static void Seal(Span<byte> sector, uint magic, long selfOffset)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(sector, magic);
        BinaryPrimitives.WriteInt64LittleEndian(sector[8..], selfOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(sector[4..], Checksum(sector));
    }

    /// <summary>Null when the sector is intact, else what is wrong with it.</summary>
    public static string? Check(ReadOnlySpan<byte> sector, uint magic, long selfOffset)
    {
        var stored = BinaryPrimitives.ReadUInt32LittleEndian(sector[4..]);
        var computed = Checksum(sector);
        if (stored != computed)
        {
            return sector.IndexOfAnyExcept((byte)0) < 0
                ? "the sector is all zeros (never written, or wiped)"
                : $"checksum mismatch (stored 0x{stored:x8}, computed 0x{computed:x8})";
        }

        if (Magic(sector) != magic)
        {
            return $"wrong structure type (magic 0x{Magic(sector):x8}, expected 0x{magic:x8})";
        }

        if (SelfOffset(sector) != selfOffset)
        {
            return $"the sector says it belongs at offset {SelfOffset(sector)} (a misdirected write)";
        }

        return null;
    }

    public static void Verify(ReadOnlySpan<byte> sector, uint magic, long selfOffset, string structure)
    {
        var problem = Check(sector, magic, selfOffset);
        if (problem is not null)
        {
            throw VmfsException.Corrupt(structure, selfOffset, problem);
        }
    }
}
