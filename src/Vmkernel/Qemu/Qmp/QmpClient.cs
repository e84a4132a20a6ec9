using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>
/// A client of QEMU's machine protocol (QMP) over a unix socket.
/// <para>
/// One reader task owns the socket's input: it frames lines, routes replies to the waiting command by the
/// <c>id</c> the client put on it (so replies may come in any order), and queues events. Commands may be issued
/// from many callers at once; writes are serialised so messages never interleave on the wire.
/// </para>
/// <para>
/// Ordering guarantee: QEMU writes an event before the reply of a command that caused it (e.g. <c>STOP</c> before the
/// reply to <c>stop</c>), and the client queues each event before it completes any later reply, so when a
/// command's task completes, every event QEMU sent before the reply is already readable from <see cref="Events"/>.
/// </para>
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    /// <summary>Timeout of <see cref="ExecuteAsync"/> when the caller gives none.</summary>
    public static readonly TimeSpan DefaultCommandTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Capacity of <see cref="Events"/>. When nobody reads and it fills, the oldest event is dropped (and logged) so
    /// the reader never stalls: command replies keep flowing even if the event consumer is stuck.
    /// </summary>
    public const int EventQueueCapacity = 4096;

    // QMP names are exact (lowercase, kebab-case such as "downtime-limit"); no naming policy may rewrite them.
    // Optional QMP arguments must be absent rather than null, which QEMU rejects for most parameters. (System.Text.Json
    // applies this to object properties only, so dictionaries stay the way to send a deliberate null.)
    private static readonly JsonSerializerOptions ArgumentSerializerOptions = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    // QEMU answers the greeting and qmp_capabilities in microseconds; this floor only matters when the caller's
    // connect timeout was nearly used up waiting for the socket to appear.
    private static readonly TimeSpan MinimumHandshakeTimeout = TimeSpan.FromSeconds(2);

    private const int LogPreviewChars = 300;

    private readonly Socket _socket;
    private readonly QmpLineReader _lines;
    private readonly Stream _stream;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonElement>> _pending = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Channel<QmpEvent> _events;
    private readonly CancellationTokenSource _readerStop = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _reader = Task.CompletedTask;
    private long _nextId;
    private long _droppedEvents;

    // Null while open; the first Close stores its reason here, which also makes closing happen exactly once.
    private string? _closeReason;

    private QmpClient(Socket socket, Stream stream, QmpLineReader lines, string socketPath, string qemuVersion, ILogger logger)
    {
        _socket = socket;
        _stream = stream;
        _lines = lines;
        SocketPath = socketPath;
        QemuVersion = qemuVersion;
        _logger = logger;
        _events = Channel.CreateBounded<QmpEvent>(
            new BoundedChannelOptions(EventQueueCapacity)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleWriter = true,
            },
            dropped =>
            {
                Interlocked.Increment(ref _droppedEvents);
                QmpLog.EventDropped(_logger, SocketPath, dropped.Name);
            });
    }

    /// <summary>The unix socket this client is connected to.</summary>
    public string SocketPath { get; }

    /// <summary>The QEMU version from the greeting, e.g. "7.2.18".</summary>
    public string QemuVersion { get; }

    /// <summary>
    /// Every asynchronous event (STOP, RESUME, SHUTDOWN, RESET, POWERDOWN, MIGRATION, ...) in the order QEMU sent it.
    /// Completes when the connection closes. Bounded at <see cref="EventQueueCapacity"/>, dropping the oldest.
    /// </summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>How many events were dropped because <see cref="Events"/> was full.</summary>
    public long DroppedEventCount => Interlocked.Read(ref _droppedEvents);

    /// <summary>Completes (never faults) when the connection is closed, by either side.</summary>
    public Task Closed => _closed.Task;

    /// <summary>
    /// Connects to a QMP unix socket, reads the greeting and negotiates <c>qmp_capabilities</c>. Retries connecting
    /// until <paramref name="connectTimeout"/>, since QEMU may not have created the socket yet.
    /// </summary>
    /// <exception cref="QmpException">The socket did not accept a connection in time, or what answered is not QMP.</exception>
    public static async Task<QmpClient> ConnectAsync(
        string socketPath, TimeSpan connectTimeout, ILogger? logger = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        ArgumentOutOfRangeException.ThrowIfLessThan(connectTimeout, TimeSpan.Zero);
        logger ??= NullLogger.Instance;
        var elapsed = Stopwatch.StartNew();
        TimeSpan HandshakeTimeout()
        {
            var left = connectTimeout - elapsed.Elapsed;
            return left > MinimumHandshakeTimeout ? left : MinimumHandshakeTimeout;
        }

        var socket = await ConnectSocketAsync(socketPath, connectTimeout, elapsed, logger, ct).ConfigureAwait(false);
        var stream = new NetworkStream(socket, ownsSocket: true);
        QmpClient? client = null;
        try
        {
            var lines = new QmpLineReader(stream);
            string version = await ReadGreetingAsync(lines, socketPath, HandshakeTimeout(), ct).ConfigureAwait(false);
            client = new QmpClient(socket, stream, lines, socketPath, version, logger);
            client._reader = Task.Run(client.ReadLoopAsync, CancellationToken.None);
            try
            {
                await client.ExecuteAsync("qmp_capabilities", null, HandshakeTimeout(), ct).ConfigureAwait(false);
            }
            catch (QmpException e)
            {
                throw new QmpException(
                    $"QMP socket '{socketPath}' sent a greeting but capabilities negotiation failed: {e.Message}", e);
            }

            QmpLog.Connected(logger, socketPath, version);
            return client;
        }
        catch
        {
            if (client is not null)
            {
                await client.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>
    /// Sends <c>{"execute": command, "arguments": arguments, "id": n}</c> and returns the reply's <c>return</c> value.
    /// </summary>
    /// <param name="command">The QMP command, e.g. <c>query-status</c>.</param>
    /// <param name="arguments">
    /// Serialised with System.Text.Json as is: names are sent exactly as written, with no naming policy. QMP names are
    /// lowercase and often kebab-case, so pass an anonymous object for simple names (<c>new { uri = "tcp:..." }</c>)
    /// and a <c>Dictionary&lt;string, object?&gt;</c> for names a C# identifier cannot spell
    /// (<c>["downtime-limit"] = 300</c>). Null properties of objects are omitted, since QMP's optional members must be
    /// absent rather than null; dictionary entries are sent as given, null included, for the few StrOrNull
    /// parameters where null means "clear" (e.g. <c>tls-creds</c>). A <see cref="JsonElement"/> is sent verbatim.
    /// </param>
    /// <param name="timeout">How long to wait for the reply; <see cref="DefaultCommandTimeout"/> when null.</param>
    /// <param name="ct">Cancels the wait (throws <see cref="OperationCanceledException"/>).</param>
    /// <exception cref="QmpCommandException">QEMU answered with an error.</exception>
    /// <exception cref="QmpTimeoutException">No reply within the timeout; the connection stays usable.</exception>
    /// <exception cref="QmpConnectionClosedException">The connection closed (QEMU exited, or the client was disposed).</exception>
    public async Task<JsonElement> ExecuteAsync(
        string command, object? arguments = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command);
        var limit = timeout ?? DefaultCommandTimeout;
        if (limit <= TimeSpan.Zero && limit != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), limit, "A QMP command timeout must be positive (or infinite).");
        }

        long id = Interlocked.Increment(ref _nextId);
        var message = Serialize(command, arguments, id);
        var reply = new TaskCompletionSource<JsonElement>(command, TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = reply;
        try
        {
            // Close drains _pending after publishing its reason; checking after registering means a command racing
            // with Close is either drained by it or sees the reason here, never left waiting.
            ThrowIfClosed(command);
            using var timeoutCts = new CancellationTokenSource(limit);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeoutCts.Token);
            var started = Stopwatch.GetTimestamp();
            var outcome = "error";
            try
            {
                await WriteAsync(command, message, linked.Token).ConfigureAwait(false);
                var result = await reply.Task.WaitAsync(linked.Token).ConfigureAwait(false);
                outcome = "ok";
                return result;
            }
            catch (OperationCanceledException) when (timeoutCts.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                outcome = "timeout";
                throw new QmpTimeoutException(command, limit);
            }
            finally
            {
                QmpMetrics.Record(command, outcome, started);
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>
    /// The run state from <c>query-status</c>: "running", "paused", "prelaunch", "postmigrate", "inmigrate",
    /// "shutdown", "guest-panicked", ...
    /// </summary>
    public async Task<string> QueryStatusAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var result = await ExecuteAsync("query-status", null, timeout, ct).ConfigureAwait(false);
        if (result.ValueKind == JsonValueKind.Object
            && result.TryGetProperty("status", out var status)
            && status.ValueKind == JsonValueKind.String)
        {
            return status.GetString()!;
        }

        throw new QmpException($"QMP socket '{SocketPath}': query-status returned no \"status\" string: {result.GetRawText()}");
    }

    public async ValueTask DisposeAsync()
    {
        Close("the QMP client was disposed");
        try
        {
            await _reader.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // The reader reports its own failures through Close; nothing left to do once it has stopped.
        }

        _readerStop.Dispose();
    }

    private static async Task<Socket> ConnectSocketAsync(
        string socketPath, TimeSpan connectTimeout, Stopwatch elapsed, ILogger logger, CancellationToken ct)
    {
        var endpoint = new UnixDomainSocketEndPoint(socketPath);
        var retryDelay = TimeSpan.FromMilliseconds(10);
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            string error;
            try
            {
                await socket.ConnectAsync(endpoint, ct).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                error = $"{e.SocketErrorCode}: {e.Message}";
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            var left = connectTimeout - elapsed.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                throw new QmpException(
                    $"Could not connect to the QMP socket '{socketPath}' within {connectTimeout.TotalSeconds:0.###} s ({error}). " +
                    $"Check that QEMU is running and was started with -qmp unix:{socketPath},server=on,wait=off.");
            }

            QmpLog.ConnectRetry(logger, socketPath, error);
            // Polling is the only way to learn that another process created the socket. The cap is low: every
            // VM start waits here, and a late connect is boot time the guest never gets back.
            await Task.Delay(retryDelay < left ? retryDelay : left, ct).ConfigureAwait(false);
            retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, TimeSpan.FromMilliseconds(25).Ticks));
        }
    }

    private static async Task<string> ReadGreetingAsync(QmpLineReader lines, string socketPath, TimeSpan timeout, CancellationToken ct)
    {
        ReadOnlyMemory<byte>? line;
        using (var greetingCts = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            greetingCts.CancelAfter(timeout);
            try
            {
                line = await lines.ReadLineAsync(greetingCts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new QmpException(
                    $"The QMP socket '{socketPath}' accepted the connection but sent no greeting within {timeout.TotalSeconds:0.###} s. " +
                    "QEMU serves one QMP client at a time: check that no other client is connected, and that QEMU is not hung.");
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                throw new QmpException($"The connection to the QMP socket '{socketPath}' failed while waiting for the greeting: {e.Message}", e);
            }
        }

        if (line is null)
        {
            throw new QmpException(
                $"The QMP socket '{socketPath}' closed the connection before sending a greeting. Check that QEMU is still running.");
        }

        string? version = null;
        try
        {
            using var greeting = JsonDocument.Parse(line.Value);
            if (greeting.RootElement.ValueKind == JsonValueKind.Object
                && greeting.RootElement.TryGetProperty("QMP", out var qmp)
                && qmp.ValueKind == JsonValueKind.Object
                && qmp.TryGetProperty("version", out var versionInfo)
                && versionInfo.ValueKind == JsonValueKind.Object
                && versionInfo.TryGetProperty("qemu", out var qemu)
                && qemu.ValueKind == JsonValueKind.Object
                && TryGetInt(qemu, "major", out int major)
                && TryGetInt(qemu, "minor", out int minor)
                && TryGetInt(qemu, "micro", out int micro))
            {
                version = $"{major}.{minor}.{micro}";
            }
        }
        catch (JsonException)
        {
            // Reported below together with the other ways a greeting can be wrong.
        }

        return version ?? throw new QmpException(
            $"The socket '{socketPath}' did not send a QMP greeting: expected {{\"QMP\": {{\"version\": {{\"qemu\": {{\"major\": ..., \"minor\": ..., \"micro\": ...}}}}}}}}, " +
            $"got: {Preview(line.Value.Span)}. Check that the path is QEMU's -qmp socket, not a serial console or an HMP monitor.");
    }

    private static bool TryGetInt(JsonElement element, string name, out int value)
    {
        value = 0;
        return element.TryGetProperty(name, out var property)
            && property.ValueKind == JsonValueKind.Number
            && property.TryGetInt32(out value);
    }

    private static ReadOnlyMemory<byte> Serialize(string command, object? arguments, long id)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("execute", command);
            if (arguments is not null)
            {
                writer.WritePropertyName("arguments");
                JsonSerializer.Serialize(writer, arguments, arguments.GetType(), ArgumentSerializerOptions);
            }

            writer.WriteNumber("id", id);
            writer.WriteEndObject();
        }

        buffer.Write("\n"u8);
        return buffer.WrittenMemory;
    }

    private static string Preview(ReadOnlySpan<byte> line)
    {
        string text = Encoding.UTF8.GetString(line.Length > LogPreviewChars * 4 ? line[..(LogPreviewChars * 4)] : line);
        return text.Length > LogPreviewChars ? text[..LogPreviewChars] + $"... ({line.Length} bytes)" : text;
    }

    private async Task WriteAsync(string command, ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfClosed(command);
            try
            {
                await _stream.WriteAsync(message, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Part of the message may be on the wire; whatever follows would be read as garbage by QEMU.
                Close($"a write of command '{command}' was interrupted midway, leaving the QMP stream unusable");
                throw;
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                Close($"writing to the QMP socket failed ({e.Message}); QEMU has probably exited");
                throw new QmpConnectionClosedException(ClosedMessage(command), e);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void ThrowIfClosed(string command)
    {
        if (Volatile.Read(ref _closeReason) is not null)
        {
            throw new QmpConnectionClosedException(ClosedMessage(command));
        }
    }

    private string ClosedMessage(string command) =>
        $"QMP command '{command}' on '{SocketPath}' got no reply: the connection is closed ({Volatile.Read(ref _closeReason)}).";

    private async Task ReadLoopAsync()
    {
        string reason;
        try
        {
            while (true)
            {
                var line = await _lines.ReadLineAsync(_readerStop.Token).ConfigureAwait(false);
                if (line is null)
                {
                    reason = "QEMU closed the QMP socket: it exited, was killed, or executed 'quit'";
                    break;
                }

                Dispatch(line.Value);
            }
        }
        catch (Exception) when (Volatile.Read(ref _closeReason) is not null)
        {
            return; // Close disposed the socket under the pending read.
        }
        catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionReset })
        {
            // What a QEMU that quits or dies looks like from here: an end, not a fault.
            reason = "QEMU reset the QMP connection: it exited, was killed, or executed 'quit'";
        }
        catch (Exception e)
        {
            QmpLog.ReadFailed(_logger, SocketPath, e);
            reason = $"reading the QMP socket failed: {e.Message}";
        }

        Close(reason);
    }

    private void Dispatch(ReadOnlyMemory<byte> line)
    {
        if (line.Span.Trim(" \t\r"u8).IsEmpty)
        {
            return;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            QmpLog.MalformedLine(_logger, SocketPath, $"not JSON: {e.Message}", Preview(line.Span));
            return;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                QmpLog.MalformedLine(_logger, SocketPath, $"a JSON {root.ValueKind}, not an object", Preview(line.Span));
            }
            else if (root.TryGetProperty("event", out var name))
            {
                DeliverEvent(root, name, line.Span);
            }
            else if (root.TryGetProperty("return", out var result))
            {
                DeliverReply(root, line.Span, reply => reply.TrySetResult(result.Clone()));
            }
            else if (root.TryGetProperty("error", out var error))
            {
                DeliverReply(root, line.Span, reply => reply.TrySetException(ToCommandException((string)reply.Task.AsyncState!, error)));
            }
            else
            {
                QmpLog.MalformedLine(_logger, SocketPath, "no \"return\", \"error\" or \"event\" member", Preview(line.Span));
            }
        }
    }

    private void DeliverReply(JsonElement root, ReadOnlySpan<byte> line, Action<TaskCompletionSource<JsonElement>> complete)
    {
        if (root.TryGetProperty("id", out var idElement)
            && idElement.ValueKind == JsonValueKind.Number
            && idElement.TryGetInt64(out long id)
            && _pending.TryRemove(id, out var reply))
        {
            complete(reply);
            return;
        }

        // QEMU sends id-less error replies for input it could not parse; those, and late replies to commands that
        // timed out, have nobody waiting.
        string shownId = root.TryGetProperty("id", out idElement) ? idElement.GetRawText() : "(none)";
        QmpLog.UnknownReplyId(_logger, SocketPath, shownId, Preview(line));
    }

    private void DeliverEvent(JsonElement root, JsonElement name, ReadOnlySpan<byte> line)
    {
        if (name.ValueKind != JsonValueKind.String)
        {
            QmpLog.MalformedLine(_logger, SocketPath, "\"event\" is not a string", Preview(line));
            return;
        }

        var data = root.TryGetProperty("data", out var d) ? d.Clone() : EmptyObject;
        var timestamp = DateTimeOffset.UtcNow;
        if (root.TryGetProperty("timestamp", out var ts)
            && ts.ValueKind == JsonValueKind.Object
            && ts.TryGetProperty("seconds", out var seconds) && seconds.TryGetInt64(out long s)
            && ts.TryGetProperty("microseconds", out var micros) && micros.TryGetInt64(out long us)
            && s is >= 0 and < 253402300800 && us is >= 0 and < 1_000_000)
        {
            timestamp = DateTimeOffset.FromUnixTimeSeconds(s).AddTicks(us * TimeSpan.TicksPerMicrosecond);
        }

        // DropOldest: TryWrite fails only after the channel completed, i.e. the connection is closing anyway.
        _events.Writer.TryWrite(new QmpEvent(name.GetString()!, data, timestamp));
    }

    private static QmpCommandException ToCommandException(string command, JsonElement error)
    {
        string Text(string member) =>
            error.ValueKind == JsonValueKind.Object
            && error.TryGetProperty(member, out var value)
            && value.ValueKind == JsonValueKind.String
                ? value.GetString()!
                : $"(QEMU sent no \"{member}\")";

        return new QmpCommandException(command, Text("class"), Text("desc"));
    }

    private void Close(string reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null)
        {
            return;
        }

        QmpLog.Closed(_logger, SocketPath, reason);
        _readerStop.Cancel();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already disconnected by the peer.
        }

        _stream.Dispose();
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var reply))
            {
                reply.TrySetException(new QmpConnectionClosedException(ClosedMessage((string)reply.Task.AsyncState!)));
            }
        }

        _events.Writer.TryComplete();
        _closed.TrySetResult();
    }
}
