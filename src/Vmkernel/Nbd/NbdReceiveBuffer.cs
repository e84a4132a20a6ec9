using System.Buffers;
using System.Net.Sockets;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// The bytes received from a client and not yet consumed by a parser. Pooled; unconsumed bytes are moved to the
/// front only when more room is needed at the back.
/// </summary>
internal sealed class NbdReceiveBuffer : IDisposable
{
    private byte[] _buffer;
    private int _start;
    private int _end;

    public NbdReceiveBuffer(int capacity) => _buffer = ArrayPool<byte>.Shared.Rent(capacity);

    public int Capacity => _buffer.Length;

    public int Count => _end - _start;

    public ReadOnlySpan<byte> Data => _buffer.AsSpan(_start, _end - _start);

    public void Consume(int count)
    {
        _start += count;
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    /// <summary>Copies out and consumes up to <paramref name="destination"/>.Length bytes; returns how many.</summary>
    public int Take(Span<byte> destination)
    {
        int count = Math.Min(destination.Length, Count);
        Data[..count].CopyTo(destination);
        Consume(count);
        return count;
    }

    /// <summary>Receives once into the free space (making room first); returns bytes received, 0 at end of stream.</summary>
    public int Fill(Socket socket)
    {
        if (_buffer.Length - _end < _buffer.Length / 2)
        {
            Compact(); // moves only an unparsed partial frame, so it is cheap
        }

        int received = socket.Receive(_buffer.AsSpan(_end), SocketFlags.None);
        _end += received;
        return received;
    }

    /// <summary>Receives until at least <paramref name="count"/> bytes are buffered; false if the peer closed first.</summary>
    public bool FillAtLeast(Socket socket, int count)
    {
        if (count > _buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "more than the receive buffer holds");
        }

        if (_start + count > _buffer.Length)
        {
            Compact();
        }

        while (Count < count)
        {
            if (Fill(socket) == 0)
            {
                return false;
            }
        }

        return true;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Compact()
    {
        if (_start == 0)
        {
            return;
        }

        Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
        _end -= _start;
        _start = 0;
    }
}
