using System.Buffers.Binary;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// One host's ballot sector of a resource lease (Disk Paxos' "disk block", sanlock's dblock), written only by
/// that host and read by all. Also carries the host's shared-read mark for the resource.
/// <code>
///   0  header (magic "VLBL", crc32c, selfOffset)
///  16  u32  resource index        20 u32 host slot
///  24  u64  lver this ballot is for (ballots for older versions are ignored)
///  32  u64  mbal (highest ballot this host started)   40 u64 bal (ballot of the accepted value, 0 = none)
///  48  u32  value: owner slot     52 u32 value: mode   56 u64 value: owner generation
///  64  u32  shared-read held (1/0)  72 u64 host generation of that shared hold
/// </code>
/// </summary>
internal sealed record LeaseBallot
{
    public int Resource { get; init; }
    public int HostSlot { get; init; }
    public ulong Version { get; init; }
    public ulong MaxBallot { get; init; }
    public ulong Ballot { get; init; }
    public int ValueOwnerSlot { get; init; }
    public LeaseMode ValueMode { get; init; }
    public ulong ValueOwnerGeneration { get; init; }
    public bool SharedHeld { get; init; }
    public ulong SharedGeneration { get; init; }

    public void Write(Span<byte> sector, long selfOffset)
    {
        sector.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(sector[16..], Resource);
        BinaryPrimitives.WriteInt32LittleEndian(sector[20..], HostSlot);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[24..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[32..], MaxBallot);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[40..], Ballot);
        BinaryPrimitives.WriteInt32LittleEndian(sector[48..], ValueOwnerSlot);
        BinaryPrimitives.WriteInt32LittleEndian(sector[52..], (int)ValueMode);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[56..], ValueOwnerGeneration);
        BinaryPrimitives.WriteUInt32LittleEndian(sector[64..], SharedHeld ? 1u : 0u);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[72..], SharedGeneration);
        MetadataSector.Seal(sector, MetadataSector.BallotMagic, selfOffset);
    }

    public static LeaseBallot Read(ReadOnlySpan<byte> sector, long selfOffset, int resource, int hostSlot)
    {
        MetadataSector.Verify(sector, MetadataSector.BallotMagic, selfOffset, $"lock record {resource} (ballot of host slot {hostSlot})");
        return new LeaseBallot
        {
            Resource = BinaryPrimitives.ReadInt32LittleEndian(sector[16..]),
            HostSlot = BinaryPrimitives.ReadInt32LittleEndian(sector[20..]),
            Version = BinaryPrimitives.ReadUInt64LittleEndian(sector[24..]),
            MaxBallot = BinaryPrimitives.ReadUInt64LittleEndian(sector[32..]),
            Ballot = BinaryPrimitives.ReadUInt64LittleEndian(sector[40..]),
            ValueOwnerSlot = BinaryPrimitives.ReadInt32LittleEndian(sector[48..]),
            ValueMode = (LeaseMode)BinaryPrimitives.ReadInt32LittleEndian(sector[52..]),
            ValueOwnerGeneration = BinaryPrimitives.ReadUInt64LittleEndian(sector[56..]),
            SharedHeld = BinaryPrimitives.ReadUInt32LittleEndian(sector[64..]) == 1,
            SharedGeneration = BinaryPrimitives.ReadUInt64LittleEndian(sector[72..]),
        };
    }
}
