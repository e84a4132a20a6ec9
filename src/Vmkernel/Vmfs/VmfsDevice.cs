using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The shared device (a block device or a file) opened with O_DIRECT where the file system supports it, so
/// that every write reaches the device that other hosts read instead of this host's page cache. Where
/// O_DIRECT is refused (tmpfs on kernels before 6.6 answers EINVAL) it falls back to buffered I/O and says so: that is only
/// correct while all "hosts" share one kernel, which is the case for tests on one machine.
/// Reads and writes go through pread/pwrite and are safe to call from many threads at once.
/// </summary>
internal sealed unsafe class VmfsDevice : IDisposable
{
    private readonly Lock _poolLock = new();
    private readonly Stack<AlignedBuffer> _pool = new();
    private readonly int _poolBufferSize;
    private int _fd;
    private long _flushes;

    private VmfsDevice(string path, int fd, bool direct, bool writable, int poolBufferSize)
    {
        Path = path;
        _fd = fd;
        DirectIo = direct;
        Writable = writable;
        _poolBufferSize = poolBufferSize;
        Length = Libc.LSeek(fd, 0, Libc.SeekEnd);
        if (Length < 0)
        {
            throw IoError("find the size of", 0);
        }

        MemoryAlignment = direct ? ProbeAlignment() : 1;
    }

    public string Path { get; }

    public bool DirectIo { get; }

    public bool Writable { get; }

    public long Length { get; private set; }

    /// <summary>Alignment O_DIRECT needs for offsets, lengths and buffer addresses (1 without O_DIRECT).</summary>
    public int MemoryAlignment { get; }

    /// <param name="preferDirect">False forces buffered I/O (the fallback path, for tests on file systems that do support O_DIRECT).</param>
    public static VmfsDevice Open(string path, bool writable, ILogger? logger = null, bool create = false, int poolBufferSize = 1 << 20, bool preferDirect = true)
    {
        var flags = (writable ? Libc.ORdWr : Libc.ORdOnly) | Libc.OCloExec | (create ? Libc.OCreat : 0);
        var fd = preferDirect ? Libc.Open(path, flags | Libc.ODirect, 0x1b0 /* 0660 */) : -1;
        var direct = true;
        if (fd < 0)
        {
            var errno = preferDirect ? System.Runtime.InteropServices.Marshal.GetLastPInvokeError() : Libc.EInval;
            if (errno != Libc.EInval && errno != Libc.EOpNotSupp)
            {
                throw new VmfsException(VmfsErrorCode.Io,
                    $"cannot open '{path}': {Libc.ErrorText(errno)}. Check that the device or file exists and that you may {(writable ? "write" : "read")} it.");
            }

            fd = Libc.Open(path, flags, 0x1b0);
            if (fd < 0)
            {
                var errno2 = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                throw new VmfsException(VmfsErrorCode.Io, $"cannot open '{path}': {Libc.ErrorText(errno2)}.");
            }

            direct = false;
            if (preferDirect)
            {
                logger?.LogWarning("The file system of {Path} refuses O_DIRECT; using buffered I/O, which is only safe when all hosts share this kernel", path);
            }
        }

        try
        {
            return new VmfsDevice(path, fd, direct, writable, poolBufferSize);
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }
    }

    /// <summary>Sets the length of a regular file (format creates the file this way).</summary>
    public void SetLength(long length)
    {
        if (Libc.FTruncate(_fd, length) != 0)
        {
            throw IoError("resize", length);
        }

        Length = length;
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes; bytes past the end of the device are an error.</summary>
    public void Read(long offset, Span<byte> buffer)
    {
        if (IsAligned(offset, buffer.Length) && IsAligned(buffer))
        {
            fixed (byte* p = buffer)
            {
                ReadRaw(offset, p, buffer.Length);
            }

            return;
        }

        var start = AlignDown(offset);
        var end = AlignUp(offset + buffer.Length);
        var bounce = Rent((int)(end - start));
        try
        {
            ReadRaw(start, bounce.Pointer, (int)(end - start));
            new ReadOnlySpan<byte>(bounce.Pointer + (offset - start), buffer.Length).CopyTo(buffer);
        }
        finally
        {
            Return(bounce);
        }
    }

    /// <summary>
    /// Writes all of <paramref name="data"/>. Under O_DIRECT an unaligned write needs a read-modify-write of
    /// the sectors at its edges; callers (the virtual disk) serialise those themselves.
    /// </summary>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (IsAligned(offset, data.Length) && IsAligned(data))
        {
            fixed (byte* p = data)
            {
                WriteRaw(offset, p, data.Length);
            }

            return;
        }

        var start = AlignDown(offset);
        var end = AlignUp(offset + data.Length);
        var length = (int)(end - start);
        var bounce = Rent(length);
        try
        {
            if (start != offset || end != offset + data.Length)
            {
                ReadRaw(start, bounce.Pointer, length);
            }

            data.CopyTo(new Span<byte>(bounce.Pointer + (offset - start), data.Length));
            WriteRaw(start, bounce.Pointer, length);
        }
        finally
        {
            Return(bounce);
        }
    }

    /// <summary>How many times <see cref="Flush"/> asked the file system to make writes durable.</summary>
    internal long Flushes => Interlocked.Read(ref _flushes);

    public void Flush()
    {
        Interlocked.Increment(ref _flushes);
        if (Libc.FDataSync(_fd) != 0)
        {
            throw IoError("flush", 0);
        }
    }

    /// <summary>Deallocates a range of a regular file (it then reads as zeros). False where unsupported.</summary>
    public bool TryPunchHole(long offset, long length) =>
        Libc.FAllocate(_fd, Libc.FallocPunchHole | Libc.FallocKeepSize, offset, length) == 0;

    /// <summary>Zeroes a range: punches a hole where the file system can, writes zeros otherwise.</summary>
    public void Zero(long offset, long length)
    {
        if (TryPunchHole(offset, length))
        {
            return;
        }

        using var zeros = new AlignedBuffer((int)Math.Min(length, 1 << 20));
        for (var done = 0L; done < length;)
        {
            var n = (int)Math.Min(zeros.Length, length - done);
            Write(offset + done, zeros.Span[..n]);
            done += n;
        }
    }

    public bool IsAligned(long offset, long length) =>
        MemoryAlignment == 1 || (offset % MemoryAlignment == 0 && length % MemoryAlignment == 0);

    public bool IsAligned(ReadOnlySpan<byte> span)
    {
        if (MemoryAlignment == 1)
        {
            return true;
        }

        fixed (byte* p = span)
        {
            return (nuint)p % (nuint)MemoryAlignment == 0;
        }
    }

    public AlignedBuffer Rent(int length)
    {
        if (length <= _poolBufferSize)
        {
            lock (_poolLock)
            {
                if (_pool.Count > 0)
                {
                    return _pool.Pop();
                }
            }

            return new AlignedBuffer(_poolBufferSize);
        }

        return new AlignedBuffer(length);
    }

    public void Return(AlignedBuffer buffer)
    {
        if (buffer.Length == _poolBufferSize)
        {
            lock (_poolLock)
            {
                if (_pool.Count < 32 && _fd >= 0)
                {
                    _pool.Push(buffer);
                    return;
                }
            }
        }

        buffer.Dispose();
    }

    public void ReadRaw(long offset, byte* buffer, int length)
    {
        var done = 0;
        while (done < length)
        {
            var n = Libc.PRead(_fd, buffer + done, length - done, offset + done);
            if (n < 0)
            {
                if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Libc.EIntr)
                {
                    continue;
                }

                throw IoError("read", offset + done);
            }

            if (n == 0)
            {
                throw new VmfsException(VmfsErrorCode.Io,
                    $"read of {length} bytes at offset {offset} of '{Path}' ran past its end ({Length} bytes); the device is smaller than its superblock says.");
            }

            done += (int)n;
        }
    }

    public void WriteRaw(long offset, byte* buffer, int length)
    {
        var done = 0;
        while (done < length)
        {
            var n = Libc.PWrite(_fd, buffer + done, length - done, offset + done);
            if (n < 0)
            {
                if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Libc.EIntr)
                {
                    continue;
                }

                throw IoError("write", offset + done);
            }

            done += (int)n;
        }
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.Close(fd);
            lock (_poolLock)
            {
                while (_pool.Count > 0)
                {
                    _pool.Pop().Dispose();
                }
            }
        }
    }

    private long AlignDown(long value) => value / MemoryAlignment * MemoryAlignment;

    private long AlignUp(long value) => (value + MemoryAlignment - 1) / MemoryAlignment * MemoryAlignment;

    private int ProbeAlignment()
    {
        // A 512-byte direct read succeeds on 512-byte-sector devices and fails with EINVAL on 4Kn ones.
        using var probe = new AlignedBuffer(4096);
        if (Length >= 4096 && Libc.PRead(_fd, probe.Pointer + 512, 512, 512) < 0 &&
            System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Libc.EInval)
        {
            return 4096;
        }

        return 512;
    }

    private VmfsException IoError(string what, long offset)
    {
        var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        return new VmfsException(VmfsErrorCode.Io,
            $"cannot {what} '{Path}' at offset {offset}: {Libc.ErrorText(errno)} (errno {errno}).");
    }
}
