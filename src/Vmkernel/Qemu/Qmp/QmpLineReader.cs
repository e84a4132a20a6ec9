namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>
/// Splits the QMP byte stream into lines (QEMU ends every JSON message with <c>\r\n</c>). Framing is kept apart
/// from the transport and from JSON parsing: the buffer holds at most one partial line plus what one read brought.
/// A line longer than <see cref="MaxLineBytes"/> is returned truncated (it then fails to parse and is reported as
/// malformed) and the rest of it is skipped, so a runaway peer cannot grow memory without bound.
/// </summary>
internal sealed class QmpLineReader
{
    private const int InitialBufferBytes = 4096;

    private readonly Stream _stream;
    private byte[] _buffer = new byte[InitialBufferBytes];
    private int _start;
    private int _end;
    private bool _skippingRestOfLongLine;

    public QmpLineReader(Stream stream, int maxLineBytes = 16 * 1024 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineBytes, InitialBufferBytes);
        _stream = stream;
        MaxLineBytes = maxLineBytes;
    }

    public int MaxLineBytes { get; }

    /// <summary>
    /// Returns the next line without its terminator (valid until the next call), or null at the end of the
    /// stream. A partial line at the end of the stream is dropped: QEMU never sends one unless it died mid-write.
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken ct)
    {
        int scanFrom = _start;
        while (true)
        {
            int newline = _buffer.AsSpan(scanFrom, _end - scanFrom).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                int lineEnd = scanFrom + newline;
                int lineStart = _start;
                _start = lineEnd + 1;
                if (_skippingRestOfLongLine)
                {
                    _skippingRestOfLongLine = false;
                    scanFrom = _start;
                    continue;
                }

                if (lineEnd > lineStart && _buffer[lineEnd - 1] == (byte)'\r')
                {
                    lineEnd--;
                }

                return _buffer.AsMemory(lineStart, lineEnd - lineStart);
            }

            if (_skippingRestOfLongLine)
            {
                _start = _end = 0;
            }
            else if (_end - _start >= MaxLineBytes)
            {
                var truncated = _buffer.AsMemory(_start, _end - _start);
                _start = _end = 0;
                _skippingRestOfLongLine = true;
                return truncated;
            }

            MakeRoomForRead();
            scanFrom = _end;
            int read = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
            if (read == 0)
            {
                return null;
            }

            _end += read;
        }
    }

    private void MakeRoomForRead()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxLineBytes));
        }
    }
}
