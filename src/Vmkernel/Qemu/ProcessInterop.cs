using System.Runtime.InteropServices;

namespace Vmk.Vmkernel.Qemu;

/// <summary>The few libc calls needed to watch and signal a QEMU process we did not start ourselves.</summary>
internal static partial class ProcessInterop
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    private const long SysPidfdOpen = 434; // x86_64 and aarch64 share this number
    private const short PollIn = 0x1;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall_pidfd_open(long number, int pid, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int chown(string path, int owner, int group);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>True while a process with this pid exists (a zombie counts until reaped).</summary>
    public static bool Exists(int pid) => pid > 0 && (kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == 1 /* EPERM */);

    /// <summary>A file descriptor that becomes readable when the process exits; -1 if it is already gone.</summary>
    public static int PidfdOpen(int pid) => (int)syscall_pidfd_open(SysPidfdOpen, pid, 0);

    /// <summary>Waits up to <paramref name="timeoutMs"/> for the pidfd to signal exit.</summary>
    public static unsafe bool PollExited(int pidfd, int timeoutMs)
    {
        var fds = new PollFd { Fd = pidfd, Events = PollIn };
        return poll(&fds, 1, timeoutMs) > 0;
    }
}
