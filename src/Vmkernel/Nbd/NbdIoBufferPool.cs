namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// Keeps freed <see cref="NbdIoBuffer"/>s by power-of-two size for reuse, a few per size (fewer for big ones), so
/// steady traffic allocates nothing. Owned by one server; everything is freed when the server is disposed.
/// </summary>
internal sealed class NbdIoBufferPool : IDisposable
{
    private const int MinShift = 14; // 16 KiB: head room plus the largest small reply (block status)
    private readonly Stack<NbdIoBuffer>[] _free;
    private bool _disposed;

    public NbdIoBufferPool()
    {
        int classes = SizeClass(NbdIoBuffer.HeadRoom + NbdProtocol.MaxPayloadLength) + 1;
        _free = new Stack<NbdIoBuffer>[classes];
        for (int i = 0; i < classes; i++)
        {
            _free[i] = new Stack<NbdIoBuffer>();
        }
    }

    /// <summary>A buffer whose data area holds at least <paramref name="dataLength"/> bytes.</summary>
    public NbdIoBuffer Rent(int dataLength)
    {
        int sizeClass = SizeClass(NbdIoBuffer.HeadRoom + dataLength);
        var stack = _free[sizeClass];
        lock (stack)
        {
            if (stack.Count > 0)
            {
                return stack.Pop();
            }
        }

        return NbdIoBuffer.Allocate(1 << (sizeClass + MinShift));
    }

    public void Return(NbdIoBuffer buffer)
    {
        int sizeClass = SizeClass(buffer.Capacity);
        var stack = _free[sizeClass];
        int keep = buffer.Capacity <= 1 << 20 ? 64 : 8;
        lock (stack)
        {
            if (!_disposed && stack.Count < keep)
            {
                stack.Push(buffer);
                return;
            }
        }

        buffer.Free();
    }

    public void Dispose()
    {
        foreach (var stack in _free)
        {
            lock (stack)
            {
                _disposed = true;
                while (stack.Count > 0)
                {
                    stack.Pop().Free();
                }
            }
        }
    }

    private static int SizeClass(int bytes) =>
        Math.Max(0, (int)Math.Ceiling(Math.Log2(bytes)) - MinShift);
}
