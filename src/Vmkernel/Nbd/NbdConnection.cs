using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// One client connection: handshake, then the transmission phase until the client disconnects, breaks the
/// protocol, or the export or server goes away.
/// <para>
/// Threading: a dedicated reader thread receives, parses and validates requests. Short reads and writes run right
/// there, against the block device, while it answers at page-cache speed; their replies are collected in a batch
/// that goes out in one send before the reader blocks for more input. Longer reads from a file-backed device are
/// queued as sendfile replies (no copy). Everything else (long transfers, FUA, flush, trim, write-zeroes, block
/// status, and all I/O while the device is slow) goes to the server's I/O threads, at most
/// <see cref="NbdServerOptions.MaxInFlightPerConnection"/> at a time. Replies from all threads go through one
/// queue; whichever thread finds it idle becomes the sender and drains it, so no reply interleaves with another
/// and no thread waits on a lock to send.
/// </para>
/// </summary>
internal sealed class NbdConnection
{
    private const int MaxLoggedRequestErrors = 16;
    private const int BatchSize = 256 * 1024;
    private const int MaxBlockStatusDescriptors = 1024;

    /// <summary>Reply bytes a connection may have waiting to be sent; the reader stops taking requests beyond it.</summary>
    private const long MaxQueuedReplyBytes = 64L << 20;

    private readonly Socket _socket;
    private readonly NbdServer _server;
    private readonly NbdServerOptions _options;
    private readonly NbdWorkerPool _workers;
    private readonly NbdIoBufferPool _buffers;
    private readonly long _inlineLatencyLimit;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<OutgoingReply> _outgoing = new();
    private readonly SemaphoreSlim _slots;
    private readonly NbdWorkItem?[] _freeItems;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private NbdExport? _export;
    private IBlockDevice? _device;
    private IFileBackedBlockDevice? _fileBacked;
    private NbdSession? _session;
    private bool _structured;
    private int _freeItemCount;
    private int _pendingReplies;
    private long _queuedReplyBytes;
    private readonly ManualResetEventSlim _sendProgress = new(false);
    private int _closed;
    private volatile bool _sendFailed;
    private string? _abortReason;
    private int _loggedRequestErrors;
    private long _shortRequestLatency;
    private volatile bool _inlineSlowed;

    private byte[]? _batch;
    private int _batchLength;
    private int _batchCount;

    public NbdConnection(Socket socket, NbdServer server, NbdWorkerPool workers, NbdIoBufferPool buffers, NbdServerOptions options, ILogger logger, string peer)
    {
        _socket = socket;
        _workers = workers;
        _buffers = buffers;
        _inlineLatencyLimit = (long)(options.InlineLatencyLimit.TotalSeconds * Stopwatch.Frequency);
        _server = server;
        _options = options;
        _logger = logger;
        Peer = peer;
        _slots = new SemaphoreSlim(options.MaxInFlightPerConnection, options.MaxInFlightPerConnection);
        _freeItems = new NbdWorkItem?[options.MaxInFlightPerConnection];
    }

    public string Peer { get; }

    public Task Completion => _completion.Task;

    private string ExportName => _export?.Name ?? "";

    /// <summary>Runs the connection to its end on the calling (dedicated) thread. Never throws.</summary>
    public void Run()
    {
        using var input = new NbdReceiveBuffer(_options.ReceiveBufferSize);
        try
        {
            _socket.Blocking = true;
            _socket.ReceiveTimeout = (int)_options.HandshakeTimeout.TotalMilliseconds;
            _socket.SendTimeout = (int)_options.SendTimeout.TotalMilliseconds;
            if (_socket.ProtocolType == ProtocolType.Tcp)
            {
                _socket.NoDelay = true;
            }

            _session = new NbdHandshake(_socket, input, _server, _logger, Peer).Run();
            if (_session is null)
            {
                return;
            }

            if (!_session.Export.TryAttach(this))
            {
                NbdLog.ProtocolViolation(_logger, Peer, _session.Export.Name, "export was removed while the client was connecting");
                return;
            }

            _export = _session.Export;
            _device = _export.Device;
            _fileBacked = _options.ZeroCopyReads ? _device as IFileBackedBlockDevice : null;
            _structured = _session.StructuredReplies;
            _socket.ReceiveTimeout = 0; // a guest may leave its disk idle for as long as it likes
            NbdLog.ClientAttached(_logger, Peer, _export.Name, _structured, _session.BaseAllocation);
            Transmit(input);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            var reason = _abortReason ?? (ex is SocketException se && se.SocketErrorCode == SocketError.TimedOut
                ? "timed out"
                : ex.Message);
            NbdLog.ClientLeft(_logger, Peer, ExportName, reason);
        }
        catch (Exception ex)
        {
            NbdLog.ConnectionFailed(_logger, ex, Peer, ExportName);
        }
        finally
        {
            Close();
        }
    }

    /// <summary>Disconnects the client from another thread (export removed, server shutting down).</summary>
    public void Abort(string reason)
    {
        _abortReason ??= reason;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: nothing left to interrupt.
        }
    }

    private void Transmit(NbdReceiveBuffer input)
    {
        while (true)
        {
            while (true)
            {
                var status = NbdFraming.TryParseRequest(input.Data, out var request, out int headerLength);
                if (status == NbdParseStatus.NeedMoreData)
                {
                    break;
                }

                if (status == NbdParseStatus.BadMagic)
                {
                    FlushBatch();
                    NbdLog.ProtocolViolation(_logger, Peer, ExportName, "bad request magic (framing lost); closing the connection");
                    return;
                }

                if (request.Type == NbdProtocol.CmdWrite && request.Length > NbdProtocol.MaxPayloadLength)
                {
                    // The payload cannot be skipped at a reasonable cost: the protocol allows a hard disconnect here.
                    FlushBatch();
                    NbdLog.ProtocolViolation(_logger, Peer, ExportName,
                        $"write of {request.Length} bytes exceeds the {NbdProtocol.MaxPayloadLength}-byte maximum; closing the connection");
                    return;
                }

                bool inline = IsInline(request);
                if (inline && request.HasPayload && input.Count < headerLength + (int)request.Length)
                {
                    break; // wait for the rest of a short write's payload
                }

                long start = Stopwatch.GetTimestamp();
                input.Consume(headerLength);
                if (request.Type == NbdProtocol.CmdDisc)
                {
                    FlushBatch();
                    NbdLog.ClientLeft(_logger, Peer, ExportName, "client sent NBD_CMD_DISC");
                    return;
                }

                if (!Handle(request, start, inline, input))
                {
                    return;
                }
            }

            FlushBatch();
            if (input.Fill(_socket) == 0)
            {
                NbdLog.ClientLeft(_logger, Peer, ExportName, _abortReason ?? (input.Count > 0
                    ? $"client disconnected in the middle of a request ({input.Count} bytes of it received)"
                    : "client closed the connection without NBD_CMD_DISC"));
                return;
            }
        }
    }

    private bool IsShort(in NbdRequest request) =>
        (request.Type == NbdProtocol.CmdRead || request.Type == NbdProtocol.CmdWrite) &&
        request.Length <= (uint)_options.InlineMaxLength &&
        !request.Fua;

    private bool IsInline(in NbdRequest request) => !_inlineSlowed && IsShort(request);

    /// <summary>
    /// Tracks how long the device takes for short requests (moving average over ~8) and turns inline serving off
    /// while it looks like real disk I/O rather than the page cache, with hysteresis so it does not flap.
    /// </summary>
    private void ObserveShortRequest(long deviceTicks)
    {
        long average = Volatile.Read(ref _shortRequestLatency);
        average += (deviceTicks - average) / 8;
        Volatile.Write(ref _shortRequestLatency, average);
        if (!_inlineSlowed && average > _inlineLatencyLimit)
        {
            _inlineSlowed = true;
        }
        else if (_inlineSlowed && average < _inlineLatencyLimit / 2)
        {
            _inlineSlowed = false;
        }
    }

    /// <summary>Validates and runs or dispatches one request whose header is consumed; false ends the connection.</summary>
    private bool Handle(in NbdRequest request, long start, bool inline, NbdReceiveBuffer input)
    {
        var (error, problem) = Validate(request);
        if (error != 0)
        {
            if (request.HasPayload && !SkipPayload(input, request.Length))
            {
                return false;
            }

            LogRequestError(request, error, problem);
            ReserveBatch(NbdFraming.MaxErrorChunkLength);
            _batchLength += WriteError(_batch.AsSpan(_batchLength), request.Handle, error, problem);
            RecordStats(request, start, failed: true);
            return true;
        }

        if (inline)
        {
            RunInline(request, start, input);
            return true;
        }

        if (request.Type == NbdProtocol.CmdRead && TrySendFromFile(request, start))
        {
            return true;
        }

        if (!_slots.Wait(0))
        {
            FlushBatch(); // let the client see finished replies while we wait for a free slot
            _slots.Wait();
        }

        var item = RentItem();
        item.Request = request;
        item.StartTimestamp = start;
        item.ReplyCost = request.Type == NbdProtocol.CmdRead ? request.Length + 64L : 64L;
        Reserve(item.ReplyCost);
        item.Buffer = _buffers.Rent(request.Type switch
        {
            NbdProtocol.CmdRead or NbdProtocol.CmdWrite => (int)request.Length,
            NbdProtocol.CmdBlockStatus => 8 * MaxBlockStatusDescriptors,
            _ => 0,
        });
        if (request.Type == NbdProtocol.CmdWrite && !ReceivePayload(input, item.Buffer.Data((int)request.Length)))
        {
            ReleaseItem(item);
            return false;
        }

        _workers.Enqueue(item);
        return true;
    }

    /// <summary>
    /// Queues a read reply whose data goes from the device's file to the socket with sendfile(2), skipping the copy
    /// into and out of user space. False when the device cannot map the range (the read then takes the normal path).
    /// </summary>
    private bool TrySendFromFile(in NbdRequest request, long start)
    {
        if (_fileBacked is null || request.Length == 0 ||
            !_fileBacked.TryMapToFile((long)request.Offset, request.Length, out var file, out long fileOffset))
        {
            return false;
        }

        int header = NbdFraming.ReadReplyHeaderLength(_structured);
        var buffer = ArrayPool<byte>.Shared.Rent(header);
        NbdFraming.WriteReadReplyHeader(buffer, _structured, request.Handle, request.Offset, request.Length);
        RecordStats(request, start, failed: false);
        FlushBatch();
        long cost = header + (long)request.Length;
        Reserve(cost);
        Enqueue(new OutgoingReply(buffer, null, 0, header, null, file, fileOffset, (int)request.Length, cost));
        return true;
    }

    private (uint Error, string Problem) Validate(in NbdRequest request)
    {
        var export = _export!;
        bool beyondEnd = request.Offset > (ulong)export.Size || request.Length > (ulong)export.Size - request.Offset;
        ushort allowedFlags = NbdProtocol.CmdFlagFua;
        switch (request.Type)
        {
            case NbdProtocol.CmdRead:
                allowedFlags |= NbdProtocol.CmdFlagDf;
                if (request.Length > NbdProtocol.MaxPayloadLength)
                {
                    return (NbdProtocol.EInval, $"read of {request.Length} bytes exceeds the {NbdProtocol.MaxPayloadLength}-byte maximum");
                }

                if (beyondEnd)
                {
                    return (NbdProtocol.EInval, $"read of {request.Length} bytes at {request.Offset} is beyond the end of the {export.Size}-byte export");
                }

                break;

            case NbdProtocol.CmdWrite:
            case NbdProtocol.CmdTrim:
            case NbdProtocol.CmdWriteZeroes:
                if (request.Type == NbdProtocol.CmdWriteZeroes)
                {
                    allowedFlags |= NbdProtocol.CmdFlagNoHole;
                }

                if (export.ReadOnly)
                {
                    return (NbdProtocol.EPerm, $"export '{export.Name}' is read-only");
                }

                if (beyondEnd)
                {
                    return (request.Type == NbdProtocol.CmdTrim ? NbdProtocol.EInval : NbdProtocol.ENoSpc,
                        $"{CommandName(request.Type)} of {request.Length} bytes at {request.Offset} is beyond the end of the {export.Size}-byte export");
                }

                break;

            case NbdProtocol.CmdFlush:
                if (request.Offset != 0 || request.Length != 0)
                {
                    return (NbdProtocol.EInval, "flush must have offset and length 0");
                }

                break;

            case NbdProtocol.CmdBlockStatus:
                allowedFlags |= NbdProtocol.CmdFlagReqOne;
                if (!_session!.BaseAllocation)
                {
                    return (NbdProtocol.EInval, "block status without a metadata context selected (negotiate base:allocation first)");
                }

                if (beyondEnd)
                {
                    return (NbdProtocol.EInval, $"block status of {request.Length} bytes at {request.Offset} is beyond the end of the {export.Size}-byte export");
                }

                break;

            default:
                return (NbdProtocol.EInval, $"unknown command {request.Type}");
        }

        if ((request.Flags & ~allowedFlags) != 0)
        {
            return (NbdProtocol.EInval, $"command flags 0x{request.Flags:x4} are not valid for {CommandName(request.Type)}");
        }

        return (0, "");
    }

    private void RunInline(in NbdRequest request, long start, NbdReceiveBuffer input)
    {
        int length = (int)request.Length;
        bool failed = false;
        if (request.Type == NbdProtocol.CmdRead)
        {
            int header = length == 0 ? 0 : NbdFraming.ReadReplyHeaderLength(_structured);
            ReserveBatch(Math.Max(header + length, NbdFraming.MaxErrorChunkLength));
            var reply = _batch.AsSpan(_batchLength);
            try
            {
                if (length == 0)
                {
                    _batchLength += WriteSuccess(reply, request.Handle);
                }
                else
                {
                    long before = Stopwatch.GetTimestamp();
                    _device!.Read((long)request.Offset, reply.Slice(header, length));
                    ObserveShortRequest(Stopwatch.GetTimestamp() - before);
                    NbdFraming.WriteReadReplyHeader(reply, _structured, request.Handle, request.Offset, request.Length);
                    _batchLength += header + length;
                }
            }
            catch (Exception ex) when (IsDeviceError(ex))
            {
                failed = true;
                _batchLength += WriteDeviceError(reply, request, ex);
            }
        }
        else
        {
            ReserveBatch(NbdFraming.MaxErrorChunkLength);
            var reply = _batch.AsSpan(_batchLength);
            try
            {
                long before = Stopwatch.GetTimestamp();
                _device!.Write((long)request.Offset, input.Data[..length], forceUnitAccess: false);
                ObserveShortRequest(Stopwatch.GetTimestamp() - before);
                _batchLength += WriteSuccess(reply, request.Handle);
            }
            catch (Exception ex) when (IsDeviceError(ex))
            {
                failed = true;
                _batchLength += WriteDeviceError(reply, request, ex);
            }

            input.Consume(length);
        }

        RecordStats(request, start, failed);
        if (++_batchCount >= _options.MaxRepliesPerBatch)
        {
            FlushBatch();
        }
    }

    /// <summary>Runs a dispatched request on an I/O thread and queues its reply.</summary>
    public void Execute(NbdWorkItem item)
    {
        var request = item.Request;
        var device = _device!;
        var buffer = item.Buffer!;
        var small = buffer.Span(0, NbdIoBuffer.HeadRoom); // room for any reply without data
        item.ReplyOffset = 0;
        bool failed = false;
        try
        {
            switch (request.Type)
            {
                case NbdProtocol.CmdRead:
                    if (request.Length == 0)
                    {
                        item.ReplyLength = WriteSuccess(small, request.Handle);
                        break;
                    }

                    int header = NbdFraming.ReadReplyHeaderLength(_structured);
                    long beforeRead = Stopwatch.GetTimestamp();
                    device.Read((long)request.Offset, buffer.Data((int)request.Length));
                    if (IsShort(request))
                    {
                        ObserveShortRequest(Stopwatch.GetTimestamp() - beforeRead);
                    }

                    item.ReplyOffset = NbdIoBuffer.HeadRoom - header;
                    NbdFraming.WriteReadReplyHeader(buffer.Span(item.ReplyOffset, header), _structured, request.Handle, request.Offset, request.Length);
                    item.ReplyLength = header + (int)request.Length;
                    break;

                case NbdProtocol.CmdWrite:
                    long beforeWrite = Stopwatch.GetTimestamp();
                    device.Write((long)request.Offset, buffer.Data((int)request.Length), request.Fua);
                    if (IsShort(request))
                    {
                        ObserveShortRequest(Stopwatch.GetTimestamp() - beforeWrite);
                    }

                    item.ReplyLength = WriteSuccess(small, request.Handle);
                    break;

                case NbdProtocol.CmdFlush:
                    device.Flush();
                    item.ReplyLength = WriteSuccess(small, request.Handle);
                    break;

                case NbdProtocol.CmdTrim:
                case NbdProtocol.CmdWriteZeroes:
                    if (request.Type == NbdProtocol.CmdTrim)
                    {
                        device.Trim((long)request.Offset, request.Length);
                    }
                    else
                    {
                        device.WriteZeroes((long)request.Offset, request.Length, mayDeallocate: (request.Flags & NbdProtocol.CmdFlagNoHole) == 0);
                    }

                    if (request.Fua)
                    {
                        device.Flush();
                    }

                    item.ReplyLength = WriteSuccess(small, request.Handle);
                    break;

                case NbdProtocol.CmdBlockStatus:
                    BlockStatus(item, device);
                    break;
            }
        }
        catch (Exception ex) when (IsDeviceError(ex))
        {
            failed = true;
            item.ReplyOffset = 0;
            item.ReplyLength = WriteDeviceError(small, request, ex);
        }

        RecordStats(request, item.StartTimestamp, failed);
        Enqueue(new OutgoingReply(null, buffer, item.ReplyOffset, item.ReplyLength, item, null, 0, 0, item.ReplyCost));
    }

    private void BlockStatus(NbdWorkItem item, IBlockDevice device)
    {
        var request = item.Request;
        var extents = device.GetExtents((long)request.Offset, request.Length);
        int maxDescriptors = (request.Flags & NbdProtocol.CmdFlagReqOne) != 0 ? 1 : MaxBlockStatusDescriptors;
        var reply = item.Buffer!.Span(0, NbdProtocol.StructuredReplyHeaderLength + 4 + (8 * maxDescriptors));
        var descriptors = reply[(NbdProtocol.StructuredReplyHeaderLength + 4)..];
        int count = 0;
        ulong covered = 0;
        foreach (var extent in extents)
        {
            // Clip to the request, merge neighbours of equal status, and keep each descriptor within 32 bits.
            ulong extentStart = Math.Max((ulong)extent.Offset, request.Offset);
            ulong extentEnd = Math.Min((ulong)(extent.Offset + extent.Length), request.Offset + request.Length);
            if (extentEnd <= extentStart || extentStart != request.Offset + covered)
            {
                continue;
            }

            uint flags = (extent.IsHole ? NbdProtocol.StateHole : 0) | (extent.IsZero || extent.IsHole ? NbdProtocol.StateZero : 0);
            ulong length = extentEnd - extentStart;
            if (count > 0 && BinaryPrimitives.ReadUInt32BigEndian(descriptors[((8 * (count - 1)) + 4)..]) == flags)
            {
                ulong merged = BinaryPrimitives.ReadUInt32BigEndian(descriptors[(8 * (count - 1))..]) + length;
                uint fits = (uint)Math.Min(merged, 0xFFFF_F000UL);
                BinaryPrimitives.WriteUInt32BigEndian(descriptors[(8 * (count - 1))..], fits);
                covered += fits - (merged - length);
                if (fits < merged)
                {
                    break;
                }

                continue;
            }

            if (count == maxDescriptors)
            {
                break;
            }

            uint descriptorLength = (uint)Math.Min(length, 0xFFFF_F000UL);
            BinaryPrimitives.WriteUInt32BigEndian(descriptors[(8 * count)..], descriptorLength);
            BinaryPrimitives.WriteUInt32BigEndian(descriptors[((8 * count) + 4)..], flags);
            count++;
            covered += descriptorLength;
            if (descriptorLength < length)
            {
                break;
            }
        }

        if (count == 0)
        {
            // The device described nothing usable: "allocated, contents unknown" is always a truthful answer.
            BinaryPrimitives.WriteUInt32BigEndian(descriptors, request.Length);
            BinaryPrimitives.WriteUInt32BigEndian(descriptors[4..], 0);
            count = 1;
        }

        uint payload = (uint)(4 + (8 * count));
        NbdFraming.WriteStructuredHeader(reply, NbdProtocol.ReplyFlagDone, NbdProtocol.ReplyTypeBlockStatus, request.Handle, payload);
        BinaryPrimitives.WriteUInt32BigEndian(reply[NbdProtocol.StructuredReplyHeaderLength..], NbdProtocol.BaseAllocationContextId);
        item.ReplyLength = NbdProtocol.StructuredReplyHeaderLength + (int)payload;
    }

    private int WriteSuccess(Span<byte> destination, ulong handle)
    {
        if (_structured)
        {
            NbdFraming.WriteStructuredHeader(destination, NbdProtocol.ReplyFlagDone, NbdProtocol.ReplyTypeNone, handle, 0);
            return NbdProtocol.StructuredReplyHeaderLength;
        }

        NbdFraming.WriteSimpleReply(destination, 0, handle);
        return NbdProtocol.SimpleReplyHeaderLength;
    }

    private int WriteError(Span<byte> destination, ulong handle, uint error, string message)
    {
        if (_structured)
        {
            return NbdFraming.WriteErrorChunk(destination, handle, error, message);
        }

        NbdFraming.WriteSimpleReply(destination, error, handle);
        return NbdProtocol.SimpleReplyHeaderLength;
    }

    private int WriteDeviceError(Span<byte> destination, in NbdRequest request, Exception ex)
    {
        uint error = ex is IOException { HResult: 28 or 27 or 122 } ? NbdProtocol.ENoSpc : NbdProtocol.EIo; // ENOSPC, EFBIG, EDQUOT
        NbdLog.DeviceError(_logger, ex, Peer, ExportName, CommandName(request.Type), request.Offset, request.Length);
        return WriteError(destination, request.Handle, error, $"{CommandName(request.Type)} failed on the server: {ex.Message}");
    }

    private static bool IsDeviceError(Exception ex) =>
        ex is IOException or UnauthorizedAccessException or InvalidOperationException or NotSupportedException or ArgumentException;

    private void RecordStats(in NbdRequest request, long start, bool failed)
    {
        var operation = request.Type switch
        {
            NbdProtocol.CmdRead => NbdOperation.Read,
            NbdProtocol.CmdWrite => NbdOperation.Write,
            NbdProtocol.CmdFlush => NbdOperation.Flush,
            NbdProtocol.CmdTrim => NbdOperation.Trim,
            NbdProtocol.CmdWriteZeroes => NbdOperation.WriteZeroes,
            NbdProtocol.CmdBlockStatus => NbdOperation.BlockStatus,
            _ => (NbdOperation?)null,
        };
        if (operation is { } op)
        {
            _export!.Counters.Record(op, failed ? 0 : request.Length, start, failed);
        }
    }

    private void LogRequestError(in NbdRequest request, uint error, string problem)
    {
        int logged = Interlocked.Increment(ref _loggedRequestErrors);
        if (logged <= MaxLoggedRequestErrors)
        {
            NbdLog.RequestRefused(_logger, Peer, ExportName, problem, error);
        }
        else if (logged == MaxLoggedRequestErrors + 1)
        {
            NbdLog.RequestErrorsSuppressed(_logger, Peer, ExportName, MaxLoggedRequestErrors);
        }
    }

    /// <summary>Makes room for <paramref name="length"/> more bytes in the batch, sending it first if it is too full.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNull(nameof(_batch))]
    private void ReserveBatch(int length)
    {
        if (_batch is not null && _batch.Length - _batchLength >= length)
        {
            return;
        }

        FlushBatch();
        _batch = ArrayPool<byte>.Shared.Rent(Math.Max(BatchSize, length));
        _batchLength = 0;
    }

    /// <summary>
    /// Counts <paramref name="bytes"/> of reply against the connection's budget, first waiting (reader thread) while
    /// the budget is spent: a client that sends requests but does not read replies is slowed to its own pace
    /// instead of making the server buffer without limit. Gives up waiting once sending has failed.
    /// </summary>
    private void Reserve(long bytes)
    {
        while (Volatile.Read(ref _queuedReplyBytes) > MaxQueuedReplyBytes && !_sendFailed)
        {
            _sendProgress.Reset();
            if (Volatile.Read(ref _queuedReplyBytes) <= MaxQueuedReplyBytes)
            {
                break;
            }

            _sendProgress.Wait(TimeSpan.FromSeconds(1));
        }

        Interlocked.Add(ref _queuedReplyBytes, bytes);
    }

    private void FlushBatch()
    {
        if (_batch is null)
        {
            return;
        }

        if (_batchLength == 0)
        {
            return;
        }

        var batch = _batch;
        int length = _batchLength;
        _batchCount = 0;
        _batch = null;
        _batchLength = 0;
        Reserve(length);
        Enqueue(new OutgoingReply(batch, null, 0, length, null, null, 0, 0, length));
    }

    private void Enqueue(OutgoingReply reply)
    {
        _outgoing.Enqueue(reply);
        if (Interlocked.Increment(ref _pendingReplies) != 1)
        {
            return; // another thread is sending and will take this one too
        }

        int remaining;
        do
        {
            _outgoing.TryDequeue(out var next);
            Send(next);
            remaining = Interlocked.Decrement(ref _pendingReplies);
        }
        while (remaining != 0);
    }

    private void Send(in OutgoingReply reply)
    {
        try
        {
            if (!_sendFailed)
            {
                var data = reply.Array is { } array ? array.AsSpan(reply.Offset, reply.Length) : reply.Native!.Span(reply.Offset, reply.Length);
                while (!data.IsEmpty)
                {
                    data = data[_socket.Send(data, SocketFlags.None)..];
                }

                if (reply.File is not null)
                {
                    SendFile(reply.File, reply.FileOffset, reply.FileLength);
                }
            }
        }
        catch (IOException ex)
        {
            // The header promised data that cannot follow: the protocol's only way out is a hard disconnect.
            _sendFailed = true;
            NbdLog.ProtocolViolation(_logger, Peer, ExportName, $"reading the export's file failed after the reply header was sent: {ex.Message}; closing the connection");
            Abort(_abortReason ?? "read failed mid-reply");
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The reader sees the broken socket on its next receive and ends the connection; wake it now.
            _sendFailed = true;
            Abort(_abortReason ?? $"sending a reply failed: {ex.Message}");
        }
        finally
        {
            if (Interlocked.Add(ref _queuedReplyBytes, -reply.Cost) <= MaxQueuedReplyBytes)
            {
                _sendProgress.Set();
            }

            if (reply.Item is { } item)
            {
                ReleaseItem(item);
            }
            else
            {
                ArrayPool<byte>.Shared.Return(reply.Array!);
            }
        }
    }

    private void SendFile(SafeFileHandle file, long offset, int length)
    {
        long end = offset + length;
        while (offset < end)
        {
            long sent = NbdNative.SendFile(_socket.SafeHandle, file, ref offset, (nuint)(end - offset));
            if (sent > 0)
            {
                continue;
            }

            int errno = sent == 0 ? 0 : Marshal.GetLastPInvokeError();
            if (errno == NbdNative.EIntr)
            {
                continue;
            }

            if (errno == NbdNative.EAgain)
            {
                // The socket is non-blocking underneath: wait for room as a blocking send would, up to the send timeout.
                if (!_socket.Poll(_options.SendTimeout, SelectMode.SelectWrite))
                {
                    throw new SocketException((int)SocketError.TimedOut);
                }

                continue;
            }

            if (errno is NbdNative.EPipe or NbdNative.EConnReset)
            {
                throw new SocketException((int)SocketError.ConnectionReset);
            }

            throw new IOException(sent == 0
                ? $"the export's file ended {end - offset} bytes early"
                : $"sendfile failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
        }
    }

    private NbdWorkItem RentItem()
    {
        lock (_freeItems)
        {
            if (_freeItemCount > 0)
            {
                var item = _freeItems[--_freeItemCount]!;
                _freeItems[_freeItemCount] = null;
                return item;
            }
        }

        return new NbdWorkItem(this);
    }

    private void ReleaseItem(NbdWorkItem item)
    {
        if (item.Buffer is { } buffer)
        {
            item.Buffer = null;
            _buffers.Return(buffer);
        }

        lock (_freeItems)
        {
            if (_freeItemCount < _freeItems.Length)
            {
                _freeItems[_freeItemCount++] = item;
            }
        }

        _slots.Release();
    }

    /// <summary>Fills <paramref name="destination"/> with payload: what is buffered, then straight from the socket.</summary>
    private bool ReceivePayload(NbdReceiveBuffer input, Span<byte> destination)
    {
        int filled = input.Take(destination);
        if (filled < destination.Length)
        {
            FlushBatch(); // about to block on the socket
        }

        while (filled < destination.Length)
        {
            int received = _socket.Receive(destination[filled..], SocketFlags.None);
            if (received == 0)
            {
                NbdLog.ClientLeft(_logger, Peer, ExportName, _abortReason ??
                    $"client disconnected in the middle of a write ({filled} of {destination.Length} payload bytes received)");
                return false;
            }

            filled += received;
        }

        return true;
    }

    /// <summary>Discards the payload of a refused write.</summary>
    private bool SkipPayload(NbdReceiveBuffer input, uint length)
    {
        long remaining = length;
        while (true)
        {
            int take = (int)Math.Min(remaining, input.Count);
            input.Consume(take);
            remaining -= take;
            if (remaining == 0)
            {
                return true;
            }

            FlushBatch();
            if (input.Fill(_socket) == 0)
            {
                NbdLog.ClientLeft(_logger, Peer, ExportName, _abortReason ?? "client disconnected in the middle of a refused write's payload");
                return false;
            }
        }
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        // Every dispatched request finishes (and releases its slot) before the device may go away.
        for (int i = 0; i < _options.MaxInFlightPerConnection; i++)
        {
            _slots.Wait();
        }

        if (_batch is not null)
        {
            ArrayPool<byte>.Shared.Return(_batch);
            _batch = null;
        }

        // A thread may still be draining the last replies (inline batches, sendfile replies hold no slot).
        SpinWait.SpinUntil(() => Volatile.Read(ref _pendingReplies) == 0, _options.SendTimeout + TimeSpan.FromSeconds(1));
        _socket.Dispose();
        _export?.Detach(this);
        _completion.TrySetResult();
    }

    private static string CommandName(ushort type) => type switch
    {
        NbdProtocol.CmdRead => "read",
        NbdProtocol.CmdWrite => "write",
        NbdProtocol.CmdDisc => "disconnect",
        NbdProtocol.CmdFlush => "flush",
        NbdProtocol.CmdTrim => "trim",
        NbdProtocol.CmdWriteZeroes => "write-zeroes",
        NbdProtocol.CmdBlockStatus => "block-status",
        _ => $"command {type}",
    };

    /// <summary>A reply: bytes of a managed or a native buffer, then optionally a run of a file.</summary>
    private readonly record struct OutgoingReply(
        byte[]? Array, NbdIoBuffer? Native, int Offset, int Length, NbdWorkItem? Item, SafeFileHandle? File, long FileOffset, int FileLength, long Cost);
}
