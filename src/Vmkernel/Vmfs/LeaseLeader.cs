using System.Buffers.Binary;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The leader record of a resource lease: who owns it, as decided by the last Disk Paxos round.
/// <code>
///   0  header (magic "VLLD", crc32c, selfOffset)
///  16  u32  resource index (0 = metadata lock, i+1 = descriptor i)
///  20  u32  mode (0 = free, 1 = exclusive; shared readers are recorded in the ballot sectors)
///  24  u32  owner host slot
///  28  u32  reserved
///  32  u64  owner host generation (the owner's heartbeat slot generation when it acquired)
///  40  u64  lease version (lver): the generation counter, +1 on every acquisition
///  48  i64  acquired at, unix ms (display only)
/// </code>
/// </summary>
internal sealed record LeaseLeader
{
    public int Resource { get; init; }
    public LeaseMode Mode { get; init; }
    public int OwnerSlot { get; init; }
    public ulong OwnerGeneration { get; init; }
    public ulong Version { get; init; }
    public long AcquiredUnixMs { get; init; }

    public void Write(Span<byte> sector, long selfOffset)
    {
        sector.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(sector[16..], Resource);
        BinaryPrimitives.WriteInt32LittleEndian(sector[20..], (int)Mode);
        BinaryPrimitives.WriteInt32LittleEndian(sector[24..], OwnerSlot);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[32..], OwnerGeneration);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[40..], Version);
        BinaryPrimitives.WriteInt64LittleEndian(sector[48..], AcquiredUnixMs);
        MetadataSector.Seal(sector, MetadataSector.LeaderMagic, selfOffset);
    }

    public static LeaseLeader Read(ReadOnlySpan<byte> sector, long selfOffset, int resource)
    {
        MetadataSector.Verify(sector, MetadataSector.LeaderMagic, selfOffset, $"lock record {resource} (leader)");
        return new LeaseLeader
        {
            Resource = BinaryPrimitives.ReadInt32LittleEndian(sector[16..]),
            Mode = (LeaseMode)BinaryPrimitives.ReadInt32LittleEndian(sector[20..]),
            OwnerSlot = BinaryPrimitives.ReadInt32LittleEndian(sector[24..]),
            OwnerGeneration = BinaryPrimitives.ReadUInt64LittleEndian(sector[32..]),
            Version = BinaryPrimitives.ReadUInt64LittleEndian(sector[40..]),
            AcquiredUnixMs = BinaryPrimitives.ReadInt64LittleEndian(sector[48..]),
        };
    }
}
