using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Vmk.Vmkernel.Network;

/// <summary>IPv4 arithmetic on addresses as 32-bit numbers.</summary>
internal static class Ipv4
{
    public static bool TryParse(string? text, out uint value)
    {
        value = 0;
        if (text is null || !IPAddress.TryParse(text, out var a) || a.AddressFamily != AddressFamily.InterNetwork
            || text.Count(c => c == '.') != 3)
        {
            return false;
        }
        value = BinaryPrimitives.ReadUInt32BigEndian(a.GetAddressBytes());
        return true;
    }

    public static string Format(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return new IPAddress(b).ToString();
    }

    /// <summary>Parses a.b.c.d/n with no host bits set.</summary>
    public static bool TryParseSubnet(string? text, out uint network, out int prefix)
    {
        network = 0;
        prefix = 0;
        var parts = text?.Split('/');
        if (parts is not { Length: 2 } || !TryParse(parts[0], out network) || !int.TryParse(parts[1], out prefix)
            || prefix is < 8 or > 30)
        {
            return false;
        }
        return (network & ~Mask(prefix)) == 0;
    }

    public static uint Mask(int prefix) => prefix == 0 ? 0 : uint.MaxValue << (32 - prefix);

    public static bool Contains(uint network, int prefix, uint address) => (address & Mask(prefix)) == network;
}
