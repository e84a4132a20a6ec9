using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// The fixed newstyle handshake of one connection: greeting, client flags, then option haggling until the client
/// picks an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), aborts, or breaks the protocol. Runs synchronously on the
/// connection's thread; it is not a hot path, so replies are built with ordinary allocations.
/// </summary>
internal sealed class NbdHandshake
{
    private readonly Socket _socket;
    private readonly NbdReceiveBuffer _input;
    private readonly NbdServer _server;
    private readonly ILogger _logger;
    private readonly string _peer;

    private bool _noZeroes;
    private bool _structured;
    private string? _metaContextExport;

    public NbdHandshake(Socket socket, NbdReceiveBuffer input, NbdServer server, ILogger logger, string peer)
    {
        _socket = socket;
        _input = input;
        _server = server;
        _logger = logger;
        _peer = peer;
    }

    /// <summary>Runs the handshake; null when the session ends without entering transmission (logged already).</summary>
    public NbdSession? Run()
    {
        Span<byte> greeting = stackalloc byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdProtocol.InitPassword);
        BinaryPrimitives.WriteUInt64BigEndian(greeting[8..], NbdProtocol.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(greeting[16..], NbdProtocol.FlagFixedNewstyle | NbdProtocol.FlagNoZeroes);
        Send(greeting);

        if (!_input.FillAtLeast(_socket, 4))
        {
            NbdLog.HandshakeEnded(_logger, _peer, "client closed the connection before sending its flags");
            return null;
        }

        uint clientFlags = BinaryPrimitives.ReadUInt32BigEndian(_input.Data);
        _input.Consume(4);
        const uint known = NbdProtocol.ClientFlagFixedNewstyle | NbdProtocol.ClientFlagNoZeroes;
        if ((clientFlags & ~known) != 0)
        {
            // The protocol leaves no choice: unknown client flags mean dropping the connection.
            NbdLog.ProtocolViolation(_logger, _peer, "", $"unknown client flags 0x{clientFlags:x8}");
            return null;
        }

        _noZeroes = (clientFlags & NbdProtocol.ClientFlagNoZeroes) != 0;

        while (true)
        {
            if (!_input.FillAtLeast(_socket, NbdProtocol.OptionHeaderLength))
            {
                NbdLog.HandshakeEnded(_logger, _peer, _input.Count == 0
                    ? "client closed the connection during option haggling"
                    : "client closed the connection in the middle of an option");
                return null;
            }

            var status = NbdFraming.TryParseOptionHeader(_input.Data, out uint option, out uint length, out int consumed);
            if (status == NbdParseStatus.BadMagic)
            {
                NbdLog.ProtocolViolation(_logger, _peer, "", "bad option magic (not an NBD client, or a framing error)");
                return null;
            }

            if (length > NbdProtocol.MaxOptionLength)
            {
                NbdLog.ProtocolViolation(_logger, _peer, "", $"option {option} carries {length} bytes of data, more than {NbdProtocol.MaxOptionLength}");
                return null;
            }

            if (!_input.FillAtLeast(_socket, consumed + (int)length))
            {
                NbdLog.HandshakeEnded(_logger, _peer, "client closed the connection in the middle of an option");
                return null;
            }

            byte[] data = _input.Data.Slice(consumed, (int)length).ToArray();
            _input.Consume(consumed + (int)length);

            var outcome = HandleOption(option, data);
            if (outcome.Session is not null || outcome.End)
            {
                return outcome.Session;
            }
        }
    }

    private (NbdSession? Session, bool End) HandleOption(uint option, byte[] data)
    {
        switch (option)
        {
            case NbdProtocol.OptExportName:
                return (ExportName(data), true);

            case NbdProtocol.OptAbort:
                TrySendReply(option, NbdProtocol.RepAck, []);
                NbdLog.HandshakeEnded(_logger, _peer, "client aborted the negotiation");
                return (null, true);

            case NbdProtocol.OptList:
                List(data);
                return (null, false);

            case NbdProtocol.OptInfo:
            case NbdProtocol.OptGo:
                return (InfoOrGo(option, data), false);

            case NbdProtocol.OptStructuredReply:
                if (data.Length != 0)
                {
                    SendError(option, NbdProtocol.RepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
                }
                else
                {
                    _structured = true;
                    SendReply(option, NbdProtocol.RepAck, []);
                }

                return (null, false);

            case NbdProtocol.OptListMetaContext:
            case NbdProtocol.OptSetMetaContext:
                MetaContext(option, data);
                return (null, false);

            default:
                // STARTTLS included: this server runs in NOTLS mode (the VMkernel serves its own QEMUs on a unix socket).
                NbdLog.UnsupportedOption(_logger, _peer, option);
                SendError(option, NbdProtocol.RepErrUnsup, $"option {option} is not supported by this server");
                return (null, false);
        }
    }

    private NbdSession? ExportName(byte[] data)
    {
        string name = Encoding.UTF8.GetString(data);
        var export = _server.FindExport(name);
        if (export is null)
        {
            // NBD_OPT_EXPORT_NAME cannot carry an error: the protocol prescribes closing the connection.
            NbdLog.UnknownExport(_logger, _peer, name);
            return null;
        }

        ushort flags = TransmissionFlags(export);
        var reply = new byte[_noZeroes ? 10 : 134];
        BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)export.Size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), flags);
        Send(reply);
        return new NbdSession(export, _structured, _structured && _metaContextExport == name, flags);
    }

    private void List(byte[] data)
    {
        if (data.Length != 0)
        {
            SendError(NbdProtocol.OptList, NbdProtocol.RepErrInvalid, "NBD_OPT_LIST takes no data");
            return;
        }

        foreach (var export in _server.Exports)
        {
            byte[] name = Encoding.UTF8.GetBytes(export.Name);
            var payload = new byte[4 + name.Length];
            BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)name.Length);
            name.CopyTo(payload, 4);
            SendReply(NbdProtocol.OptList, NbdProtocol.RepServer, payload);
        }

        SendReply(NbdProtocol.OptList, NbdProtocol.RepAck, []);
    }

    private NbdSession? InfoOrGo(uint option, byte[] data)
    {
        // u32 name length | name | u16 request count | u16 requests...
        if (data.Length < 6)
        {
            SendError(option, NbdProtocol.RepErrInvalid, "option data too short for an export name and information requests");
            return null;
        }

        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > data.Length - 6)
        {
            SendError(option, NbdProtocol.RepErrInvalid, "export name length exceeds the option data");
            return null;
        }

        string name = Encoding.UTF8.GetString(data, 4, (int)nameLength);
        int requestCount = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength));
        if (data.Length != 6 + nameLength + (2 * requestCount))
        {
            SendError(option, NbdProtocol.RepErrInvalid, "information request count does not match the option length");
            return null;
        }

        var requested = new HashSet<ushort>();
        for (int i = 0; i < requestCount; i++)
        {
            requested.Add(BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(6 + (int)nameLength + (2 * i))));
        }

        var export = _server.FindExport(name);
        if (export is null)
        {
            NbdLog.UnknownExport(_logger, _peer, name);
            SendError(option, NbdProtocol.RepErrUnknown, $"export '{name}' does not exist on this server");
            return null;
        }

        ushort flags = TransmissionFlags(export);
        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, NbdProtocol.InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), flags);
        SendReply(option, NbdProtocol.RepInfo, info);

        if (requested.Contains(NbdProtocol.InfoName))
        {
            SendReply(option, NbdProtocol.RepInfo, InfoString(NbdProtocol.InfoName, export.Name));
        }

        if (requested.Contains(NbdProtocol.InfoDescription) && export.Description is not null)
        {
            SendReply(option, NbdProtocol.RepInfo, InfoString(NbdProtocol.InfoDescription, export.Description));
        }

        // Always sent: the defaults (any alignment) with the interoperable 32 MiB maximum made explicit.
        var blockSize = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(blockSize, NbdProtocol.InfoBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), 4096);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), NbdProtocol.MaxPayloadLength);
        SendReply(option, NbdProtocol.RepInfo, blockSize);

        SendReply(option, NbdProtocol.RepAck, []);
        return option == NbdProtocol.OptGo
            ? new NbdSession(export, _structured, _structured && _metaContextExport == name, flags)
            : null;
    }

    private void MetaContext(uint option, byte[] data)
    {
        bool set = option == NbdProtocol.OptSetMetaContext;
        if (set)
        {
            // Setting replaces the previous selection even when it fails.
            _metaContextExport = null;
        }

        if (!_structured)
        {
            SendError(option, NbdProtocol.RepErrInvalid, "negotiate NBD_OPT_STRUCTURED_REPLY before metadata contexts");
            return;
        }

        // u32 export name length | name | u32 query count | (u32 query length | query)...
        var span = data.AsSpan();
        if (span.Length < 8 || BinaryPrimitives.ReadUInt32BigEndian(span) > span.Length - 8)
        {
            SendError(option, NbdProtocol.RepErrInvalid, "export name length exceeds the option data");
            return;
        }

        int nameLength = (int)BinaryPrimitives.ReadUInt32BigEndian(span);
        string name = Encoding.UTF8.GetString(span.Slice(4, nameLength));
        span = span[(4 + nameLength)..];
        uint queryCount = BinaryPrimitives.ReadUInt32BigEndian(span);
        span = span[4..];
        var queries = new List<string>();
        for (uint i = 0; i < queryCount; i++)
        {
            if (span.Length < 4 || BinaryPrimitives.ReadUInt32BigEndian(span) > span.Length - 4)
            {
                SendError(option, NbdProtocol.RepErrInvalid, "metadata context query exceeds the option data");
                return;
            }

            int queryLength = (int)BinaryPrimitives.ReadUInt32BigEndian(span);
            queries.Add(Encoding.UTF8.GetString(span.Slice(4, queryLength)));
            span = span[(4 + queryLength)..];
        }

        if (!span.IsEmpty)
        {
            SendError(option, NbdProtocol.RepErrInvalid, "trailing bytes after the metadata context queries");
            return;
        }

        if (_server.FindExport(name) is null)
        {
            NbdLog.UnknownExport(_logger, _peer, name);
            SendError(option, NbdProtocol.RepErrUnknown, $"export '{name}' does not exist on this server");
            return;
        }

        // base:allocation is the only context. LIST treats "base:" and no query at all as wildcards; SET needs the full name.
        bool selected = queries.Exists(q => q == NbdProtocol.BaseAllocationContext) ||
                        (!set && (queryCount == 0 || queries.Exists(q => q == "base:")));
        if (selected)
        {
            byte[] contextName = Encoding.UTF8.GetBytes(NbdProtocol.BaseAllocationContext);
            var payload = new byte[4 + contextName.Length];
            BinaryPrimitives.WriteUInt32BigEndian(payload, set ? NbdProtocol.BaseAllocationContextId : 0);
            contextName.CopyTo(payload, 4);
            SendReply(option, NbdProtocol.RepMetaContext, payload);
            if (set)
            {
                _metaContextExport = name;
            }
        }

        SendReply(option, NbdProtocol.RepAck, []);
    }

    private ushort TransmissionFlags(NbdExport export)
    {
        ushort flags = NbdProtocol.FlagHasFlags | NbdProtocol.FlagSendFlush;
        if (export.ReadOnly)
        {
            flags |= NbdProtocol.FlagReadOnly;
        }
        else
        {
            flags |= NbdProtocol.FlagSendFua | NbdProtocol.FlagSendTrim | NbdProtocol.FlagSendWriteZeroes;
        }

        if (_structured)
        {
            // Every read is answered with a single data chunk, so "don't fragment" costs nothing.
            flags |= NbdProtocol.FlagSendDf;
        }

        // All connections share one device object and the server keeps no cache of its own, so a flush or FUA on
        // one connection covers writes completed on any other.
        flags |= NbdProtocol.FlagCanMultiConn;
        return flags;
    }

    private static byte[] InfoString(ushort type, string value)
    {
        byte[] text = Encoding.UTF8.GetBytes(value);
        var payload = new byte[2 + text.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, type);
        text.CopyTo(payload, 2);
        return payload;
    }

    private void SendError(uint option, uint errorType, string message) =>
        SendReply(option, errorType, Encoding.UTF8.GetBytes(message));

    private void SendReply(uint option, uint replyType, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[NbdProtocol.OptionReplyHeaderLength + payload.Length];
        NbdFraming.WriteOptionReplyHeader(frame, option, replyType, (uint)payload.Length);
        payload.CopyTo(frame.AsSpan(NbdProtocol.OptionReplyHeaderLength));
        Send(frame);
    }

    private void TrySendReply(uint option, uint replyType, ReadOnlySpan<byte> payload)
    {
        // After NBD_OPT_ABORT the client may already have closed its end; that is allowed.
        try
        {
            SendReply(option, replyType, payload);
        }
        catch (SocketException)
        {
        }
    }

    private void Send(ReadOnlySpan<byte> frame)
    {
        while (!frame.IsEmpty)
        {
            frame = frame[_socket.Send(frame, SocketFlags.None)..];
        }
    }
}
