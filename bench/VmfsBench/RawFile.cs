using System.Runtime.InteropServices;

namespace Vmk.VmfsBench;

/// <summary>The peer: plain pwrite(2) on the datastore file, opened with O_DIRECT where the file system allows it.</summary>
internal sealed unsafe partial class RawFile : IDisposable
{
    private readonly int _fd;

    public RawFile(string path)
    {
        var direct = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 ? 0x10000 : 0x4000;
        _fd = Open(path, 2 | direct, 0);
        DirectIo = _fd >= 0;
        if (_fd < 0)
        {
            _fd = Open(path, 2, 0);
        }

        if (_fd < 0)
        {
            throw new IOException($"cannot open {path}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public bool DirectIo { get; }

    public void Write(long offset, byte* buffer, int length)
    {
        if (PWrite(_fd, buffer, length, offset) != length)
        {
            throw new IOException($"pwrite at {offset} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public void Dispose() => Close(_fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "pwrite", SetLastError = true)]
    private static partial nint PWrite(int fd, byte* buffer, nint count, long offset);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
