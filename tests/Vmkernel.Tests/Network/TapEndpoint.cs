using System.Runtime.InteropServices;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// The VM side of a tap, opened the way QEMU opens it (TUNSETIFF on /dev/net/tun) but from the test, so a test
/// can put exact frames on a VM port and see exactly what the port delivers. The tap, the bridge and the rules are
/// the real ones; only the guest is replaced by the test. /dev/net/tun binds to the network namespace of the
/// thread that opens it, so the open happens on a short-lived thread that first joins the host's namespace.
/// </summary>
internal sealed class TapEndpoint : IDisposable
{
    private const int ORdwr = 2;
    private const int CloneNewnet = 0x40000000;
    private const ulong TunSetIff = 0x400454ca;
    private const short IffTap = 0x0002;
    private const short IffNoPi = 0x1000;
    private int _fd;

    private TapEndpoint(int fd) => _fd = fd;

    public static TapEndpoint Open(string networkNamespace, string tap)
    {
        int fd = -1;
        string? error = null;
        var thread = new Thread(() =>
        {
            var ns = open($"/run/netns/{networkNamespace}", 0);
            if (ns < 0 || setns(ns, CloneNewnet) != 0)
            {
                error = $"cannot join namespace {networkNamespace} (errno {Marshal.GetLastPInvokeError()})";
                return;
            }
            close(ns);
            fd = open("/dev/net/tun", ORdwr);
            var req = new byte[40];
            System.Text.Encoding.ASCII.GetBytes(tap).CopyTo(req, 0);
            BitConverter.GetBytes((short)(IffTap | IffNoPi)).CopyTo(req, 16);
            if (fd < 0 || ioctl(fd, TunSetIff, req) != 0)
            {
                error = $"cannot attach to tap {tap} (errno {Marshal.GetLastPInvokeError()})";
            }
        });
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw new InvalidOperationException(error);
        }
        return new TapEndpoint(fd);
    }

    /// <summary>Puts one Ethernet frame on the port, as if the VM sent it.</summary>
    public void Send(ReadOnlySpan<byte> frame)
    {
        if (write(_fd, frame.ToArray(), (nuint)frame.Length) != frame.Length)
        {
            throw new InvalidOperationException($"write to tap failed (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>The next frame the port delivers to the VM, or null if none comes within the timeout.</summary>
    public byte[]? Receive(TimeSpan timeout)
    {
        var pfd = new PollFd { Fd = _fd, Events = 1 };
        if (poll(ref pfd, 1, (int)timeout.TotalMilliseconds) <= 0)
        {
            return null;
        }
        var buffer = new byte[65536];
        var n = read(_fd, buffer, (nuint)buffer.Length);
        return n <= 0 ? null : buffer[..(int)n];
    }

    /// <summary>Reads frames until one matches or the deadline passes; frames that do not match are dropped.</summary>
    public byte[]? ReceiveMatching(Func<byte[], bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var frame = Receive(deadline - DateTime.UtcNow);
            if (frame is not null && match(frame))
            {
                return frame;
            }
        }
        return null;
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            close(fd);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int open(string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    [DllImport("libc", SetLastError = true)]
    private static extern int ioctl(int fd, ulong request, byte[] arg);

    [DllImport("libc", SetLastError = true)]
    private static extern nint write(int fd, byte[] buffer, nuint count);

    [DllImport("libc", SetLastError = true)]
    private static extern nint read(int fd, byte[] buffer, nuint count);

    [DllImport("libc", SetLastError = true)]
    private static extern int poll(ref PollFd fds, nuint nfds, int timeout);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);
}
