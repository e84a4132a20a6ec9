using System.Buffers.Binary;
using System.Net;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>Builds and reads the few Ethernet frames the tests put on ports: ARP, ICMP echo, VLAN tags.</summary>
internal static class Frames
{
    public const string Broadcast = "ff:ff:ff:ff:ff:ff";

    public static byte[] Mac(string mac) => mac.Split(':').Select(h => Convert.ToByte(h, 16)).ToArray();

    public static string MacText(ReadOnlySpan<byte> b) => string.Join(':', b[..6].ToArray().Select(x => x.ToString("x2")));

    public static string Destination(byte[] frame) => MacText(frame.AsSpan(0, 6));

    public static string Source(byte[] frame) => MacText(frame.AsSpan(6, 6));

    public static ushort EtherType(byte[] frame) => BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12));

    public static byte[] ArpRequest(string srcMac, string srcIp, string targetIp)
    {
        var f = new byte[42];
        Ethernet(f, Broadcast, srcMac, 0x0806);
        var a = f.AsSpan(14);
        BinaryPrimitives.WriteUInt16BigEndian(a, 1); // Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(a[2..], 0x0800);
        a[4] = 6;
        a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a[6..], 1); // request
        Mac(srcMac).CopyTo(a[8..]);
        IPAddress.Parse(srcIp).GetAddressBytes().CopyTo(a[14..]);
        IPAddress.Parse(targetIp).GetAddressBytes().CopyTo(a[24..]);
        return f;
    }

    /// <summary>The sender of an ARP reply for <paramref name="ip"/>, or null if the frame is something else.</summary>
    public static string? ArpReplyFor(byte[] frame, string ip)
    {
        if (frame.Length < 42 || EtherType(frame) != 0x0806 || BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(20)) != 2)
        {
            return null;
        }
        return new IPAddress(frame.AsSpan(28, 4)).ToString() == ip ? MacText(frame.AsSpan(22, 6)) : null;
    }

    public static byte[] IcmpEcho(string srcMac, string dstMac, string srcIp, string dstIp, ushort id, ushort seq, int payload = 32)
    {
        var f = new byte[14 + 20 + 8 + payload];
        Ethernet(f, dstMac, srcMac, 0x0800);
        var ip = f.AsSpan(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], seq);
        ip[8] = 64;
        ip[9] = 1; // ICMP
        IPAddress.Parse(srcIp).GetAddressBytes().CopyTo(ip[12..]);
        IPAddress.Parse(dstIp).GetAddressBytes().CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip));
        var icmp = f.AsSpan(34);
        icmp[0] = 8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], seq);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return f;
    }

    /// <summary>A plain frame of the given size with an experimental EtherType, for forging and counting.</summary>
    public static byte[] Raw(string srcMac, string dstMac, int size, ushort etherType = 0x88b5)
    {
        var f = new byte[size];
        Ethernet(f, dstMac, srcMac, etherType);
        return f;
    }

    /// <summary>The frame with an 802.1Q tag for <paramref name="vid"/> inserted after the MAC addresses.</summary>
    public static byte[] Tagged(byte[] frame, int vid)
    {
        var f = new byte[frame.Length + 4];
        frame.AsSpan(0, 12).CopyTo(f);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x8100);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), (ushort)vid);
        frame.AsSpan(12).CopyTo(f.AsSpan(16));
        return f;
    }

    /// <summary>The VLAN ID of a tagged frame, or null for an untagged one.</summary>
    public static int? VlanId(byte[] frame) =>
        EtherType(frame) == 0x8100 ? BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14)) & 0xfff : null;

    private static void Ethernet(byte[] f, string dst, string src, ushort type)
    {
        Mac(dst).CopyTo(f, 0);
        Mac(src).CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), type);
    }

    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (data.Length % 2 == 1)
        {
            sum += (uint)data[^1] << 8;
        }
        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (ushort)~sum;
    }
}
