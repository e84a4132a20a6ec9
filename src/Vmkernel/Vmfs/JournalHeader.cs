using System.Buffers.Binary;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The journal's header sector. The journal is redo-only: a transaction is a list of complete new metadata
/// sector images, each of which names its own destination (its self offset), so replay is idempotent.
/// <code>
///   0  header (magic "VJNH", crc32c, selfOffset)
///  16  u32  state (0 = empty, 1 = committed: images must be applied, 2 = applied)
///  20  u32  image count; images are in the sectors that follow the header
///  24  u64  sequence number
///  32  u32  crc32c over the images' own checksums (binds the header to exactly these images)
///  36  u32  writer host slot   40 u64 writer host generation   48 i64 committed at, unix ms
/// </code>
/// </summary>
internal sealed record JournalHeader
{
    public const uint StateEmpty = 0;
    public const uint StateCommitted = 1;
    public const uint StateApplied = 2;

    public uint State { get; init; }
    public int ImageCount { get; init; }
    public ulong Sequence { get; init; }
    public uint ImagesChecksum { get; init; }
    public int WriterSlot { get; init; }
    public ulong WriterGeneration { get; init; }
    public long CommittedUnixMs { get; init; }

    public void Write(Span<byte> sector, long selfOffset)
    {
        sector.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(sector[16..], State);
        BinaryPrimitives.WriteInt32LittleEndian(sector[20..], ImageCount);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[24..], Sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(sector[32..], ImagesChecksum);
        BinaryPrimitives.WriteInt32LittleEndian(sector[36..], WriterSlot);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[40..], WriterGeneration);
        BinaryPrimitives.WriteInt64LittleEndian(sector[48..], CommittedUnixMs);
        MetadataSector.Seal(sector, MetadataSector.JournalMagic, selfOffset);
    }

    public static JournalHeader Read(ReadOnlySpan<byte> sector, long selfOffset)
    {
        MetadataSector.Verify(sector, MetadataSector.JournalMagic, selfOffset, "journal header");
        return new JournalHeader
        {
            State = BinaryPrimitives.ReadUInt32LittleEndian(sector[16..]),
            ImageCount = BinaryPrimitives.ReadInt32LittleEndian(sector[20..]),
            Sequence = BinaryPrimitives.ReadUInt64LittleEndian(sector[24..]),
            ImagesChecksum = BinaryPrimitives.ReadUInt32LittleEndian(sector[32..]),
            WriterSlot = BinaryPrimitives.ReadInt32LittleEndian(sector[36..]),
            WriterGeneration = BinaryPrimitives.ReadUInt64LittleEndian(sector[40..]),
            CommittedUnixMs = BinaryPrimitives.ReadInt64LittleEndian(sector[48..]),
        };
    }
}
