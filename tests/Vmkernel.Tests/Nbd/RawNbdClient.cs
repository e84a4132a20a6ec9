using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>
/// A byte-level NBD client for protocol edge cases that real clients never produce (bad magic, oversized or
/// out-of-range requests, disconnects mid-request). Every receive has a deadline, so a server that fails to
/// answer fails the test instead of hanging it.
/// </summary>
internal sealed class RawNbdClient : IDisposable
{
    public const ulong OptionMagic = 0x49484156454F5054;
    public const uint RequestMagic = 0x25609513;

    private readonly Socket _socket;

    private RawNbdClient(Socket socket) => _socket = socket;

    public ushort HandshakeFlags { get; private set; }

    /// <summary>Connects and reads the greeting; sends <paramref name="clientFlags"/> unless null.</summary>
    public static RawNbdClient Connect(string socketPath, uint? clientFlags = 3)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        {
            ReceiveTimeout = 20_000,
            SendTimeout = 20_000,
        };
        socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        var client = new RawNbdClient(socket);
        var greeting = client.Receive(18);
        Assert.Equal(0x4e42444d41474943UL, BinaryPrimitives.ReadUInt64BigEndian(greeting));
        Assert.Equal(OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)));
        client.HandshakeFlags = BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
        if (clientFlags is { } flags)
        {
            var bytes = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(bytes, flags);
            client.Send(bytes);
        }

        return client;
    }

    public void SendOption(uint option, ReadOnlySpan<byte> data, ulong magic = OptionMagic)
    {
        var frame = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(frame, magic);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(12), (uint)data.Length);
        data.CopyTo(frame.AsSpan(16));
        Send(frame);
    }

    public OptionReply ReadOptionReply()
    {
        var header = Receive(20);
        Assert.Equal(0x3e889045565a9UL, BinaryPrimitives.ReadUInt64BigEndian(header));
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        return new OptionReply(
            BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)),
            BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)),
            Receive((int)length));
    }

    public static byte[] InfoRequestData(string export, params ushort[] infos)
    {
        var name = Encoding.UTF8.GetBytes(export);
        var data = new byte[4 + name.Length + 2 + (2 * infos.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
        name.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + name.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + name.Length + (2 * i)), infos[i]);
        }

        return data;
    }

    /// <summary>
    /// Negotiates and enters transmission with NBD_OPT_GO: optionally structured replies and base:allocation first.
    /// Returns the export size and transmission flags.
    /// </summary>
    public (ulong Size, ushort Flags) Go(string export, bool structured = false, bool baseAllocation = false)
    {
        if (structured)
        {
            SendOption(8, []);
            Assert.Equal(1u, ReadOptionReply().Type);
        }

        if (baseAllocation)
        {
            var name = Encoding.UTF8.GetBytes(export);
            var query = Encoding.UTF8.GetBytes("base:allocation");
            var data = new byte[4 + name.Length + 4 + 4 + query.Length];
            BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
            name.CopyTo(data, 4);
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4 + name.Length), 1);
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(8 + name.Length), (uint)query.Length);
            query.CopyTo(data, 12 + name.Length);
            SendOption(10, data);
            var context = ReadOptionReply();
            Assert.Equal(4u, context.Type);
            Assert.Equal("base:allocation", Encoding.UTF8.GetString(context.Data.AsSpan(4)));
            Assert.Equal(1u, ReadOptionReply().Type);
        }

        SendOption(7, InfoRequestData(export));
        ulong size = 0;
        ushort flags = 0;
        while (true)
        {
            var reply = ReadOptionReply();
            if (reply.Type == 1)
            {
                return (size, flags);
            }

            Assert.True(reply.Type == 3, $"NBD_OPT_GO failed with reply type 0x{reply.Type:x8}: {Encoding.UTF8.GetString(reply.Data)}");
            if (BinaryPrimitives.ReadUInt16BigEndian(reply.Data) == 0)
            {
                size = BinaryPrimitives.ReadUInt64BigEndian(reply.Data.AsSpan(2));
                flags = BinaryPrimitives.ReadUInt16BigEndian(reply.Data.AsSpan(10));
            }
        }
    }

    public void SendRequest(ushort type, ulong handle, ulong offset, uint length, ushort flags = 0, ReadOnlySpan<byte> payload = default, uint magic = RequestMagic)
    {
        var frame = new byte[28 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, magic);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(8), handle);
        BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(24), length);
        payload.CopyTo(frame.AsSpan(28));
        Send(frame);
    }

    /// <summary>Reads a simple reply: (error, handle). Read data, if any, is left for <see cref="Receive"/>.</summary>
    public (uint Error, ulong Handle) ReadSimpleReply()
    {
        var header = Receive(16);
        Assert.Equal(0x67446698u, BinaryPrimitives.ReadUInt32BigEndian(header));
        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)));
    }

    public StructuredChunk ReadStructuredChunk()
    {
        var header = Receive(20);
        Assert.Equal(0x668e33efu, BinaryPrimitives.ReadUInt32BigEndian(header));
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        return new StructuredChunk(
            BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)),
            BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6)),
            BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)),
            Receive((int)length));
    }

    public void Send(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[_socket.Send(bytes)..];
        }
    }

    public byte[] Receive(int count)
    {
        var buffer = new byte[count];
        int filled = 0;
        while (filled < count)
        {
            int received = _socket.Receive(buffer.AsSpan(filled));
            if (received == 0)
            {
                throw new EndOfStreamException($"server closed the connection after {filled} of {count} expected bytes");
            }

            filled += received;
        }

        return buffer;
    }

    /// <summary>True once the server has closed the connection (end of stream or reset), within the deadline.</summary>
    public bool ServerClosed()
    {
        var scratch = new byte[4096];
        try
        {
            while (true)
            {
                if (_socket.Receive(scratch) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut)
        {
            return false;
        }
    }

    public void Dispose() => _socket.Dispose();
}

internal sealed record OptionReply(uint Option, uint Type, byte[] Data);

internal sealed record StructuredChunk(ushort Flags, ushort Type, ulong Handle, byte[] Payload)
{
    public uint ErrorCode => BinaryPrimitives.ReadUInt32BigEndian(Payload);

    public string ErrorMessage => Encoding.ASCII.GetString(Payload, 6, BinaryPrimitives.ReadUInt16BigEndian(Payload.AsSpan(4)));
}
