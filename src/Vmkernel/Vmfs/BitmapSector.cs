namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A sector of the allocation bitmap: one bit per data block, 1 = allocated (data or block-map block).
/// <code>
///   0  header (magic "VBMP", crc32c, selfOffset)
///  16  u32  sector index    20..32 reserved
///  32  bits, least significant bit first: block = index * (S-32)*8 + bit
/// </code>
/// </summary>
internal static class BitmapSector
{
    public const int BitsStart = 32;

    public static void Init(Span<byte> sector, long selfOffset, int index)
    {
        sector.Clear();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(sector[16..], index);
        MetadataSector.Seal(sector, MetadataSector.BitmapMagic, selfOffset);
    }

    public static void Verify(ReadOnlySpan<byte> sector, long selfOffset, int index) =>
        MetadataSector.Verify(sector, MetadataSector.BitmapMagic, selfOffset, $"allocation bitmap sector {index}");

    public static bool Get(ReadOnlySpan<byte> sector, int bit) => (sector[BitsStart + (bit >> 3)] & (1 << (bit & 7))) != 0;

    public static void Set(Span<byte> sector, int bit, bool value)
    {
        ref var b = ref sector[BitsStart + (bit >> 3)];
        b = value ? (byte)(b | (1 << (bit & 7))) : (byte)(b & ~(1 << (bit & 7)));
    }

    public static void Reseal(Span<byte> sector, long selfOffset) => MetadataSector.Seal(sector, MetadataSector.BitmapMagic, selfOffset);
}
