using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vm;

/// <summary>
/// The VMkernel side of a VM's serial console. QEMU's console socket takes one client; this pump is that
/// client. It keeps the recent output in a bounded ring (in memory and in <c>console.log</c>, which never
/// grows past twice the ring size) and fans the live stream out to any number of subscribers, so a console
/// can attach late and still see the boot. Output produced while no pump is connected (between a VMkernel
/// crash and its restart) is lost: QEMU drops bytes nobody reads.
/// </summary>
public sealed class SerialConsole : IAsyncDisposable
{
    public const int DefaultRingBytes = 256 * 1024;

    private readonly string _socketPath;
    private readonly string _logPath;
    private readonly int _ringBytes;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<Channel<ReadOnlyMemory<byte>>> _subscribers = [];
    private readonly byte[] _ring;
    private readonly CancellationTokenSource _stop = new();
    private int _ringStart;
    private int _ringLength;
    private long _logLength;
    private Socket? _socket;
    private Task _pump = Task.CompletedTask;
    private int _disposed;

    public SerialConsole(string socketPath, string logPath, ILogger logger, int ringBytes = DefaultRingBytes)
    {
        _socketPath = socketPath;
        _logPath = logPath;
        _logger = logger;
        _ringBytes = ringBytes;
        _ring = new byte[ringBytes];
        LoadHistory();
    }

    /// <summary>Completes when QEMU closes the console (it exited) or the console is disposed.</summary>
    public Task Completion => _pump;

    /// <summary>Connects to QEMU's console socket (already listening once QMP answers) and starts pumping.</summary>
    public async Task ConnectAsync(CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(_socketPath), ct);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        _socket = socket;
        _pump = Task.Run(() => PumpAsync(socket, _stop.Token), CancellationToken.None);
    }

    /// <summary>What the ring holds now: the most recent output, oldest first.</summary>
    public byte[] Snapshot()
    {
        lock (_gate)
        {
            return CopyRing();
        }
    }

    /// <summary>
    /// A live stream of console output. With <paramref name="replayHistory"/> the ring's contents come first,
    /// with no gap or overlap before the live bytes. A subscriber that falls far behind loses its oldest chunks.
    /// </summary>
    public ConsoleSubscription Subscribe(bool replayHistory)
    {
        var channel = Channel.CreateBounded<ReadOnlyMemory<byte>>(new BoundedChannelOptions(4096)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        lock (_gate)
        {
            if (replayHistory && _ringLength > 0)
            {
                channel.Writer.TryWrite(CopyRing());
            }
            if (_pump.IsCompleted && _socket is not null)
            {
                channel.Writer.TryComplete();
            }
            else
            {
                _subscribers.Add(channel);
            }
        }
        return new ConsoleSubscription(channel.Reader, () => Unsubscribe(channel));
    }

    /// <summary>Sends keystrokes to the guest.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> input, CancellationToken ct)
    {
        var socket = _socket ?? throw new VmkernelException("the console is not connected: the VM is not running");
        await socket.SendAsync(input, SocketFlags.None, ct);
    }

    /// <summary>Waits for a whole line (history included) that satisfies <paramref name="match"/>, and returns it.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, CancellationToken ct)
    {
        using var sub = Subscribe(replayHistory: true);
        var pending = new StringBuilder();
        await foreach (var chunk in sub.Output.ReadAllAsync(ct))
        {
            pending.Append(Encoding.UTF8.GetString(chunk.Span));
            int newline;
            while ((newline = IndexOfNewline(pending)) >= 0)
            {
                var line = pending.ToString(0, newline).TrimEnd('\r');
                pending.Remove(0, newline + 1);
                if (match(line))
                {
                    return line;
                }
            }
        }
        throw new VmkernelException("the console closed before the expected line appeared (the VM stopped)");
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync();
        _socket?.Dispose();
        try
        {
            await _pump;
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private static int IndexOfNewline(StringBuilder sb)
    {
        for (var i = 0; i < sb.Length; i++)
        {
            if (sb[i] == '\n')
            {
                return i;
            }
        }
        return -1;
    }

    private async Task PumpAsync(Socket socket, CancellationToken ct)
    {
        var buffer = new byte[16 * 1024];
        await using var log = new FileStream(_logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 1);
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
                if (n == 0)
                {
                    break;
                }
                var chunk = buffer.AsMemory(0, n).ToArray();
                lock (_gate)
                {
                    AppendToRing(chunk);
                    foreach (var s in _subscribers)
                    {
                        s.Writer.TryWrite(chunk);
                    }
                }
                await log.WriteAsync(chunk, ct);
                _logLength += n;
                if (_logLength > 2L * _ringBytes)
                {
                    await TrimLogAsync(log, ct);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException e)
        {
            _logger.LogDebug(e, "Console socket {Socket} closed", _socketPath);
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            lock (_gate)
            {
                foreach (var s in _subscribers)
                {
                    s.Writer.TryComplete();
                }
                _subscribers.Clear();
            }
        }
    }

    // The log keeps the ring's contents: cut it back to what the ring holds when it doubles.
    private async Task TrimLogAsync(FileStream log, CancellationToken ct)
    {
        byte[] keep;
        lock (_gate)
        {
            keep = CopyRing();
        }
        log.SetLength(0);
        await log.WriteAsync(keep, ct);
        _logLength = keep.Length;
    }

    private void LoadHistory()
    {
        try
        {
            var tail = File.ReadAllBytes(_logPath);
            var start = Math.Max(0, tail.Length - _ringBytes);
            AppendToRing(tail.AsSpan(start));
            _logLength = tail.Length;
        }
        catch (FileNotFoundException)
        {
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private void AppendToRing(ReadOnlySpan<byte> data)
    {
        if (data.Length >= _ringBytes)
        {
            data[^_ringBytes..].CopyTo(_ring);
            _ringStart = 0;
            _ringLength = _ringBytes;
            return;
        }
        var end = (_ringStart + _ringLength) % _ringBytes;
        var first = Math.Min(data.Length, _ringBytes - end);
        data[..first].CopyTo(_ring.AsSpan(end));
        data[first..].CopyTo(_ring);
        _ringLength += data.Length;
        if (_ringLength > _ringBytes)
        {
            _ringStart = (_ringStart + _ringLength - _ringBytes) % _ringBytes;
            _ringLength = _ringBytes;
        }
    }

    private byte[] CopyRing()
    {
        var copy = new byte[_ringLength];
        var first = Math.Min(_ringLength, _ringBytes - _ringStart);
        _ring.AsSpan(_ringStart, first).CopyTo(copy);
        _ring.AsSpan(0, _ringLength - first).CopyTo(copy.AsSpan(first));
        return copy;
    }

    private void Unsubscribe(Channel<ReadOnlyMemory<byte>> channel)
    {
        lock (_gate)
        {
            _subscribers.Remove(channel);
        }
        channel.Writer.TryComplete();
    }
}
