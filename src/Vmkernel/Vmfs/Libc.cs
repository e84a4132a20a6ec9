using System.Runtime.InteropServices;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The few POSIX calls VMFS needs that .NET does not expose: open(2) with O_DIRECT (FileOptions has no such
/// flag), and pread/pwrite on that descriptor without the FileStream layer on the data path.
/// </summary>
internal static unsafe partial class Libc
{
    public const int ORdOnly = 0;
    public const int ORdWr = 2;
    public const int OCreat = 0x40;
    public const int OCloExec = 0x80000;
    public const int EIntr = 4;
    public const int EInval = 22;
    public const int EOpNotSupp = 95;
    public const int SeekEnd = 2;
    public const int FallocKeepSize = 1;
    public const int FallocPunchHole = 2;

    /// <summary>O_DIRECT differs between architectures (0x4000 on x86, 0x10000 on ARM).</summary>
    public static int ODirect => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm
        ? 0x10000
        : 0x4000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "pread", SetLastError = true)]
    public static partial nint PRead(int fd, byte* buffer, nint count, long offset);

    [LibraryImport("libc", EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint PWrite(int fd, byte* buffer, nint count, long offset);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int FDataSync(int fd);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    public static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int FTruncate(int fd, long length);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int FAllocate(int fd, int mode, long offset, long length);

    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
