using System.Buffers.Binary;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// Parses and writes NBD frames over spans, independent of any transport. Parsers consume what they can and
/// report how many bytes they used; a partial frame consumes nothing and stays in the caller's buffer.
/// <code>
/// request        (28): u32 magic 0x25609513 | u16 flags | u16 type | u64 handle | u64 offset | u32 length
/// simple reply   (16): u32 magic 0x67446698 | u32 error | u64 handle
/// structured     (20): u32 magic 0x668e33ef | u16 flags | u16 type | u64 handle | u32 payload length
/// option         (16): u64 magic IHAVEOPT   | u32 option | u32 data length, then data
/// option reply   (20): u64 magic 0x3e889045565a9 | u32 option | u32 reply type | u32 data length, then data
/// </code>
/// </summary>
internal static class NbdFraming
{
    public static NbdParseStatus TryParseRequest(ReadOnlySpan<byte> buffer, out NbdRequest request, out int consumed)
    {
        request = default;
        consumed = 0;
        if (buffer.Length < NbdProtocol.RequestHeaderLength)
        {
            return NbdParseStatus.NeedMoreData;
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(buffer) != NbdProtocol.RequestMagic)
        {
            return NbdParseStatus.BadMagic;
        }

        request = new NbdRequest(
            Flags: BinaryPrimitives.ReadUInt16BigEndian(buffer[4..]),
            Type: BinaryPrimitives.ReadUInt16BigEndian(buffer[6..]),
            Handle: BinaryPrimitives.ReadUInt64BigEndian(buffer[8..]),
            Offset: BinaryPrimitives.ReadUInt64BigEndian(buffer[16..]),
            Length: BinaryPrimitives.ReadUInt32BigEndian(buffer[24..]));
        consumed = NbdProtocol.RequestHeaderLength;
        return NbdParseStatus.Done;
    }

    /// <summary>Parses an option header; the option data (<paramref name="dataLength"/> bytes) follows it.</summary>
    public static NbdParseStatus TryParseOptionHeader(ReadOnlySpan<byte> buffer, out uint option, out uint dataLength, out int consumed)
    {
        option = 0;
        dataLength = 0;
        consumed = 0;
        if (buffer.Length < NbdProtocol.OptionHeaderLength)
        {
            return NbdParseStatus.NeedMoreData;
        }

        if (BinaryPrimitives.ReadUInt64BigEndian(buffer) != NbdProtocol.OptionMagic)
        {
            return NbdParseStatus.BadMagic;
        }

        option = BinaryPrimitives.ReadUInt32BigEndian(buffer[8..]);
        dataLength = BinaryPrimitives.ReadUInt32BigEndian(buffer[12..]);
        consumed = NbdProtocol.OptionHeaderLength;
        return NbdParseStatus.Done;
    }

    public static void WriteSimpleReply(Span<byte> destination, uint error, ulong handle)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdProtocol.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], handle);
    }

    public static void WriteStructuredHeader(Span<byte> destination, ushort flags, ushort type, ulong handle, uint payloadLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdProtocol.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], handle);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], payloadLength);
    }

    /// <summary>Bytes in front of the data of a successful READ reply.</summary>
    public static int ReadReplyHeaderLength(bool structured) =>
        structured ? NbdProtocol.StructuredReplyHeaderLength + 8 : NbdProtocol.SimpleReplyHeaderLength;

    /// <summary>Writes the header of a successful READ reply of <paramref name="length"/> data bytes.</summary>
    public static void WriteReadReplyHeader(Span<byte> destination, bool structured, ulong handle, ulong offset, uint length)
    {
        if (structured)
        {
            // One OFFSET_DATA chunk, final: the data is already read when the header goes out, so no error can follow.
            WriteStructuredHeader(destination, NbdProtocol.ReplyFlagDone, NbdProtocol.ReplyTypeOffsetData, handle, length + 8);
            BinaryPrimitives.WriteUInt64BigEndian(destination[NbdProtocol.StructuredReplyHeaderLength..], offset);
        }
        else
        {
            WriteSimpleReply(destination, 0, handle);
        }
    }

    /// <summary>Bytes an error chunk may take: the message is cut to fit (our messages are short ASCII).</summary>
    public const int MaxErrorChunkLength = NbdProtocol.StructuredReplyHeaderLength + 6 + MaxErrorMessageLength;

    private const int MaxErrorMessageLength = 200;

    /// <summary>Writes a final NBD_REPLY_TYPE_ERROR chunk; returns the bytes written.</summary>
    public static int WriteErrorChunk(Span<byte> destination, ulong handle, uint error, string message)
    {
        var text = destination.Slice(NbdProtocol.StructuredReplyHeaderLength + 6, MaxErrorMessageLength);
        int messageLength = System.Text.Encoding.ASCII.GetBytes(message.AsSpan(0, Math.Min(message.Length, MaxErrorMessageLength)), text);
        WriteStructuredHeader(destination, NbdProtocol.ReplyFlagDone, NbdProtocol.ReplyTypeError, handle, (uint)(6 + messageLength));
        BinaryPrimitives.WriteUInt32BigEndian(destination[NbdProtocol.StructuredReplyHeaderLength..], error);
        BinaryPrimitives.WriteUInt16BigEndian(destination[(NbdProtocol.StructuredReplyHeaderLength + 4)..], (ushort)messageLength);
        return NbdProtocol.StructuredReplyHeaderLength + 6 + messageLength;
    }

    public static void WriteOptionReplyHeader(Span<byte> destination, uint option, uint replyType, uint dataLength)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, NbdProtocol.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], replyType);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], dataLength);
    }
}
