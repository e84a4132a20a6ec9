using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Nbd;

/// <summary>The server's log events (source-generated: no allocation unless the level is enabled).</summary>
internal static partial class NbdLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "NBD server listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "NBD server refused a connection from {Peer}: already {Count} connections (the configured maximum)")]
    public static partial void TooManyConnections(ILogger logger, string peer, int count);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "NBD server stopped accepting on {Endpoint}")]
    public static partial void AcceptFailed(ILogger logger, Exception exception, string endpoint);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "NBD client {Peer} attached to export '{Export}' (structured replies: {Structured}, base:allocation: {BaseAllocation})")]
    public static partial void ClientAttached(ILogger logger, string peer, string export, bool structured, bool baseAllocation);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Information, Message = "NBD client {Peer} left export '{Export}': {Reason}")]
    public static partial void ClientLeft(ILogger logger, string peer, string export, string reason);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "NBD client {Peer} ended the handshake: {Reason}")]
    public static partial void HandshakeEnded(ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 4020, Level = LogLevel.Warning, Message = "NBD client {Peer} asked for export '{Export}', which does not exist on this server")]
    public static partial void UnknownExport(ILogger logger, string peer, string export);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Warning, Message = "NBD client {Peer} sent option {Option}, which this server does not support; replied NBD_REP_ERR_UNSUP")]
    public static partial void UnsupportedOption(ILogger logger, string peer, uint option);

    [LoggerMessage(EventId = 4022, Level = LogLevel.Warning, Message = "NBD client {Peer} (export '{Export}') broke the protocol: {Problem}")]
    public static partial void ProtocolViolation(ILogger logger, string peer, string export, string problem);

    [LoggerMessage(EventId = 4023, Level = LogLevel.Warning, Message = "NBD client {Peer} (export '{Export}'): refused request: {Problem} (error {Error})")]
    public static partial void RequestRefused(ILogger logger, string peer, string export, string problem, uint error);

    [LoggerMessage(EventId = 4024, Level = LogLevel.Warning, Message = "NBD client {Peer} (export '{Export}'): {Count} refused requests logged; further ones on this connection are answered without logging")]
    public static partial void RequestErrorsSuppressed(ILogger logger, string peer, string export, int count);

    [LoggerMessage(EventId = 4030, Level = LogLevel.Error, Message = "NBD export '{Export}': {Command} of {Length} bytes at {Offset} for client {Peer} failed on the device")]
    public static partial void DeviceError(ILogger logger, Exception exception, string peer, string export, string command, ulong offset, uint length);

    [LoggerMessage(EventId = 4031, Level = LogLevel.Error, Message = "NBD connection {Peer} (export '{Export}') failed unexpectedly")]
    public static partial void ConnectionFailed(ILogger logger, Exception exception, string peer, string export);

    [LoggerMessage(EventId = 4040, Level = LogLevel.Information, Message = "NBD export '{Export}' added ({Size} bytes, read-only: {ReadOnly})")]
    public static partial void ExportAdded(ILogger logger, string export, long size, bool readOnly);

    [LoggerMessage(EventId = 4041, Level = LogLevel.Information, Message = "NBD export '{Export}' removed")]
    public static partial void ExportRemoved(ILogger logger, string export);
}
