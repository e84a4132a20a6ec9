namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// Wire constants of the NBD protocol (NetworkBlockDevice/nbd, doc/proto.md). All integers on the wire are
/// big-endian. Only the fixed newstyle handshake is spoken; oldstyle and TLS are not offered.
/// </summary>
internal static class NbdProtocol
{
    public const ulong InitPassword = 0x4e42444d41474943; // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054; // "IHAVEOPT"
    public const ulong OptionReplyMagic = 0x3e889045565a9;
    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    // Handshake flags (server) and client flags.
    public const ushort FlagFixedNewstyle = 1 << 0;
    public const ushort FlagNoZeroes = 1 << 1;
    public const uint ClientFlagFixedNewstyle = 1 << 0;
    public const uint ClientFlagNoZeroes = 1 << 1;

    // Transmission flags.
    public const ushort FlagHasFlags = 1 << 0;
    public const ushort FlagReadOnly = 1 << 1;
    public const ushort FlagSendFlush = 1 << 2;
    public const ushort FlagSendFua = 1 << 3;
    public const ushort FlagSendTrim = 1 << 5;
    public const ushort FlagSendWriteZeroes = 1 << 6;
    public const ushort FlagSendDf = 1 << 7;
    public const ushort FlagCanMultiConn = 1 << 8;

    // Options.
    public const uint OptExportName = 1;
    public const uint OptAbort = 2;
    public const uint OptList = 3;
    public const uint OptStartTls = 5;
    public const uint OptInfo = 6;
    public const uint OptGo = 7;
    public const uint OptStructuredReply = 8;
    public const uint OptListMetaContext = 9;
    public const uint OptSetMetaContext = 10;

    // Option reply types.
    public const uint RepAck = 1;
    public const uint RepServer = 2;
    public const uint RepInfo = 3;
    public const uint RepMetaContext = 4;
    public const uint RepErrUnsup = 0x80000001;
    public const uint RepErrPolicy = 0x80000002;
    public const uint RepErrInvalid = 0x80000003;
    public const uint RepErrUnknown = 0x80000006;
    public const uint RepErrShutdown = 0x80000007;
    public const uint RepErrTooBig = 0x80000009;

    // NBD_INFO_* items of NBD_REP_INFO.
    public const ushort InfoExport = 0;
    public const ushort InfoName = 1;
    public const ushort InfoDescription = 2;
    public const ushort InfoBlockSize = 3;

    // Commands.
    public const ushort CmdRead = 0;
    public const ushort CmdWrite = 1;
    public const ushort CmdDisc = 2;
    public const ushort CmdFlush = 3;
    public const ushort CmdTrim = 4;
    public const ushort CmdWriteZeroes = 6;
    public const ushort CmdBlockStatus = 7;

    // Command flags.
    public const ushort CmdFlagFua = 1 << 0;
    public const ushort CmdFlagNoHole = 1 << 1;
    public const ushort CmdFlagDf = 1 << 2;
    public const ushort CmdFlagReqOne = 1 << 3;

    // Structured replies.
    public const ushort ReplyFlagDone = 1 << 0;
    public const ushort ReplyTypeNone = 0;
    public const ushort ReplyTypeOffsetData = 1;
    public const ushort ReplyTypeBlockStatus = 5;
    public const ushort ReplyTypeError = 0x8001;

    // base:allocation status flags.
    public const uint StateHole = 1 << 0;
    public const uint StateZero = 1 << 1;

    // Error values (the protocol's own numbering, equal to Linux errno).
    public const uint EPerm = 1;
    public const uint EIo = 5;
    public const uint EInval = 22;
    public const uint ENoSpc = 28;
    public const uint EShutdown = 108;

    /// <summary>Sizes of the fixed-length frames.</summary>
    public const int RequestHeaderLength = 28;
    public const int SimpleReplyHeaderLength = 16;
    public const int StructuredReplyHeaderLength = 20;
    public const int OptionHeaderLength = 16;
    public const int OptionReplyHeaderLength = 20;

    /// <summary>Largest READ/WRITE payload served; the protocol's interoperable maximum (2^25).</summary>
    public const int MaxPayloadLength = 32 * 1024 * 1024;

    /// <summary>Option data beyond this is not a real client (names are at most 4096 bytes).</summary>
    public const int MaxOptionLength = 64 * 1024;

    public const string BaseAllocationContext = "base:allocation";
    public const uint BaseAllocationContextId = 1;
}
