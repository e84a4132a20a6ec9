using System.Buffers.Binary;
using System.Numerics;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// CRC-32C (Castagnoli), the checksum of every metadata sector. <c>System.IO.Hashing.Crc32</c> is the IEEE
/// polynomial, not this one; <see cref="BitOperations.Crc32C(uint, ulong)"/> is the SSE4.2/ARMv8 instruction
/// with a software fallback.
/// </summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    /// <summary>Continues a running (non-finalised) CRC; start from <c>~0u</c> and invert at the end.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }
}
