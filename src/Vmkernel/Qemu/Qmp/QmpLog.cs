using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Qemu.Qmp;

internal static partial class QmpLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "QMP connected to {SocketPath}, QEMU {QemuVersion}")]
    public static partial void Connected(ILogger logger, string socketPath, string qemuVersion);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "QMP {SocketPath}: skipped a malformed line ({Problem}): {Line}")]
    public static partial void MalformedLine(ILogger logger, string socketPath, string problem, string line);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "QMP {SocketPath}: ignored a reply with unknown id {Id} (its command may have timed out): {Line}")]
    public static partial void UnknownReplyId(ILogger logger, string socketPath, string id, string line);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "QMP {SocketPath}: event queue full, dropped the oldest event {EventName}")]
    public static partial void EventDropped(ILogger logger, string socketPath, string eventName);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "QMP {SocketPath}: connection closed: {Reason}")]
    public static partial void Closed(ILogger logger, string socketPath, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "QMP {SocketPath}: reading the socket failed")]
    public static partial void ReadFailed(ILogger logger, string socketPath, Exception exception);

    [LoggerMessage(EventId = 7, Level = LogLevel.Debug, Message = "QMP {SocketPath}: waiting for the socket ({Error})")]
    public static partial void ConnectRetry(ILogger logger, string socketPath, string error);
}
