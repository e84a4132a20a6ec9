using System.Runtime.InteropServices;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace Vmk.Vmkernel.Nbd;

/// <summary>The Linux system calls the server needs beyond what .NET's Socket offers.</summary>
internal static partial class NbdNative
{
    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int EPipe = 32;
    public const int EConnReset = 104;

    /// <summary>sendfile(2): copies from the file's page cache to the socket inside the kernel; advances <paramref name="offset"/>.</summary>
    [LibraryImport("libc", EntryPoint = "sendfile", SetLastError = true)]
    public static partial long SendFile(SafeSocketHandle socket, SafeFileHandle file, ref long offset, nuint count);
}
