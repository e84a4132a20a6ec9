using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vmk.Vmkernel.Storage;

/// <summary>
/// A block device over a plain (usually sparse) file: pread/pwrite, fdatasync for flush and FUA, fallocate to punch
/// holes (trim, write-zeroes) and lseek SEEK_DATA/SEEK_HOLE to report allocation. Linux only. The size is fixed at
/// open; requests outside it are refused, so a client never reaches bytes beyond the disk it was given.
/// </summary>
public sealed partial class FileBlockDevice : IFileBackedBlockDevice
{
    private const int FallocKeepSize = 0x01;
    private const int FallocPunchHole = 0x02;
    private const int FallocZeroRange = 0x10;
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int ENxio = 6;
    private const int EOpNotSupp = 95;
    private const int ZeroChunk = 1024 * 1024;

    private readonly SafeFileHandle _handle;
    private bool _canPunchHoles = true;
    private bool _canZeroRange = true;

    private FileBlockDevice(SafeFileHandle handle, string path, long size, bool readOnly)
    {
        _handle = handle;
        Path = path;
        Size = size;
        IsReadOnly = readOnly;
    }

    public string Path { get; }

    public long Size { get; }

    public bool IsReadOnly { get; }

    /// <summary>Opens an existing file; its current length is the device size.</summary>
    public static FileBlockDevice Open(string path, bool readOnly = false)
    {
        var handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            return new FileBlockDevice(handle, path, RandomAccess.GetLength(handle), readOnly);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Creates a sparse file of <paramref name="size"/> bytes (all holes) and opens it read-write.</summary>
    public static FileBlockDevice Create(string path, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            RandomAccess.SetLength(handle, size);
            return new FileBlockDevice(handle, path, size, readOnly: false);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public void Read(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            int read = RandomAccess.Read(_handle, buffer, offset);
            if (read == 0)
            {
                // The file was truncated under us: what is missing reads as a hole would.
                buffer.Clear();
                return;
            }

            buffer = buffer[read..];
            offset += read;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess)
    {
        CheckWritable();
        CheckRange(offset, data.Length);
        RandomAccess.Write(_handle, data, offset);
        if (forceUnitAccess)
        {
            Flush();
        }
    }

    public void Flush()
    {
        if (fdatasync(_handle) != 0)
        {
            throw Failure("fdatasync");
        }
    }

    public void Trim(long offset, long length)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (length > 0 && _canPunchHoles && !TryFallocate(FallocPunchHole | FallocKeepSize, offset, length))
        {
            _canPunchHoles = false; // a hint only: a file system without hole punching keeps the data
        }
    }

    public void WriteZeroes(long offset, long length, bool mayDeallocate)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (length == 0)
        {
            return;
        }

        if (mayDeallocate && _canPunchHoles)
        {
            if (TryFallocate(FallocPunchHole | FallocKeepSize, offset, length))
            {
                return;
            }

            _canPunchHoles = false;
        }

        if (_canZeroRange)
        {
            if (TryFallocate(FallocZeroRange | FallocKeepSize, offset, length))
            {
                return;
            }

            _canZeroRange = false;
        }

        var zeros = new byte[(int)Math.Min(length, ZeroChunk)];
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, zeros.Length);
            RandomAccess.Write(_handle, zeros.AsSpan(0, chunk), offset);
            offset += chunk;
            length -= chunk;
        }
    }

    public IReadOnlyList<BlockExtent> GetExtents(long offset, long length)
    {
        CheckRange(offset, length);
        var extents = new List<BlockExtent>();
        long end = offset + length;
        long position = offset;
        while (position < end)
        {
            long data = lseek(_handle, position, SeekData);
            if (data < 0)
            {
                if (Marshal.GetLastPInvokeError() != ENxio)
                {
                    throw Failure("lseek(SEEK_DATA)");
                }

                data = end; // no data after position: a hole to the end of the file
            }

            if (data > position)
            {
                long holeEnd = Math.Min(data, end);
                extents.Add(new BlockExtent(position, holeEnd - position, IsHole: true, IsZero: true));
                position = holeEnd;
                if (position >= end)
                {
                    break;
                }
            }

            long hole = lseek(_handle, position, SeekHole);
            if (hole < 0)
            {
                throw Failure("lseek(SEEK_HOLE)");
            }

            long dataEnd = Math.Min(Math.Max(hole, position + 1), end);
            extents.Add(new BlockExtent(position, dataEnd - position, IsHole: false, IsZero: false));
            position = dataEnd;
        }

        return extents;
    }

    public bool TryMapToFile(long offset, long length, out SafeFileHandle file, out long fileOffset)
    {
        CheckRange(offset, length);
        file = _handle;
        fileOffset = offset;
        return true;
    }

    public void Dispose() => _handle.Dispose();

    private bool TryFallocate(int mode, long offset, long length)
    {
        if (fallocate(_handle, mode, offset, length) == 0)
        {
            return true;
        }

        int errno = Marshal.GetLastPInvokeError();
        return errno == EOpNotSupp ? false : throw Failure("fallocate", errno);
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size || length > Size - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"range {offset}+{length} is outside the {Size}-byte device {Path}");
        }
    }

    private void CheckWritable()
    {
        if (IsReadOnly)
        {
            throw new InvalidOperationException($"{Path} is opened read-only");
        }
    }

    private IOException Failure(string call, int? errno = null)
    {
        int error = errno ?? Marshal.GetLastPInvokeError();
        return new IOException($"{call} on {Path} failed: {Marshal.GetPInvokeErrorMessage(error)}", error);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);
}
