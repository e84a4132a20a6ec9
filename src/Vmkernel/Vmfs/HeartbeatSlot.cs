using System.Buffers.Binary;
using System.Text;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// One heartbeat slot (the host-id delta lease), one sector per host so no two hosts ever write one sector.
/// <code>
///   0  header (magic "VHBT", crc32c, selfOffset)
///  16  u32  state (0 = free, 1 = live)
///  20  u32  slot index
///  24  u64  instance id (random per join: tells two processes with one host name apart)
///  32  u64  generation (+1 on every acquisition of the slot; resource leases record it)
///  40  u64  counter (+1 on every renewal: other hosts watch it change, with their own clocks)
///  48  i64  wall-clock time of the renewal, unix ms (for display only; liveness never compares clocks)
///  56  u32  the owner's hostDeadAfter, ms   60 u32 the owner's heartbeatInterval, ms
///  64  u16  host name length, 66 u8[64] host name (UTF-8)
/// </code>
/// </summary>
internal sealed record HeartbeatSlot
{
    public const int MaxNameBytes = 64;

    public bool Live { get; init; }
    public int Slot { get; init; }
    public ulong InstanceId { get; init; }
    public ulong Generation { get; init; }
    public ulong Counter { get; init; }
    public long TimestampUnixMs { get; init; }
    public uint HostDeadAfterMs { get; init; }
    public uint HeartbeatIntervalMs { get; init; }
    public string HostName { get; init; } = "";

    public void Write(Span<byte> sector, long selfOffset)
    {
        sector.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(sector[16..], Live ? 1u : 0u);
        BinaryPrimitives.WriteInt32LittleEndian(sector[20..], Slot);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[24..], InstanceId);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[32..], Generation);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[40..], Counter);
        BinaryPrimitives.WriteInt64LittleEndian(sector[48..], TimestampUnixMs);
        BinaryPrimitives.WriteUInt32LittleEndian(sector[56..], HostDeadAfterMs);
        BinaryPrimitives.WriteUInt32LittleEndian(sector[60..], HeartbeatIntervalMs);
        var name = Encoding.UTF8.GetBytes(HostName);
        BinaryPrimitives.WriteUInt16LittleEndian(sector[64..], (ushort)name.Length);
        name.CopyTo(sector[66..]);
        MetadataSector.Seal(sector, MetadataSector.HeartbeatMagic, selfOffset);
    }

    public static HeartbeatSlot Read(ReadOnlySpan<byte> sector, long selfOffset, int slot)
    {
        MetadataSector.Verify(sector, MetadataSector.HeartbeatMagic, selfOffset, $"heartbeat slot {slot}");
        var nameLength = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(sector[64..]), (ushort)MaxNameBytes);
        return new HeartbeatSlot
        {
            Live = BinaryPrimitives.ReadUInt32LittleEndian(sector[16..]) == 1,
            Slot = BinaryPrimitives.ReadInt32LittleEndian(sector[20..]),
            InstanceId = BinaryPrimitives.ReadUInt64LittleEndian(sector[24..]),
            Generation = BinaryPrimitives.ReadUInt64LittleEndian(sector[32..]),
            Counter = BinaryPrimitives.ReadUInt64LittleEndian(sector[40..]),
            TimestampUnixMs = BinaryPrimitives.ReadInt64LittleEndian(sector[48..]),
            HostDeadAfterMs = BinaryPrimitives.ReadUInt32LittleEndian(sector[56..]),
            HeartbeatIntervalMs = BinaryPrimitives.ReadUInt32LittleEndian(sector[60..]),
            HostName = Encoding.UTF8.GetString(sector.Slice(66, nameLength)),
        };
    }
}
