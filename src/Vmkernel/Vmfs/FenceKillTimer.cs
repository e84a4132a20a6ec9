using System.Runtime.InteropServices;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A kernel timer that sends SIGKILL to this process when it fires: the software stand-in for sanlock's watchdog
/// device. The heartbeat re-arms it after every renewal for a moment between fenceAfter and hostDeadAfter, and
/// disarms it once the host has fenced itself and no write is in flight any more.
/// <para>
/// It closes the one gap the lease protocol's timing argument leaves open: a process stopped (SIGSTOP, a frozen
/// cgroup, a very long pause) between its last lease check and the write it then issues. The kernel delivers the
/// signal even to a stopped process, so such a process dies before any other host may take its leases, and the
/// write it was about to make never happens. CLOCK_BOOTTIME keeps counting while the machine is suspended.
/// </para>
/// </summary>
internal sealed unsafe partial class FenceKillTimer : IDisposable
{
    private const int ClockBootTime = 7;
    private const int SigevSignal = 0;
    private const int SigKill = 9;
    private nint _timer;
    private int _disposed;

    private FenceKillTimer(nint timer)
    {
        _timer = timer;
    }

    /// <summary>Creates the timer, disarmed.</summary>
    public static FenceKillTimer Create()
    {
        var ev = default(SigEvent);
        ev.Signo = SigKill;
        ev.Notify = SigevSignal;
        nint timer;
        if (TimerCreate(ClockBootTime, &ev, &timer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new VmfsException(VmfsErrorCode.Io, $"cannot create the fencing kill timer (timer_create: {Libc.ErrorText(errno)}).");
        }

        return new FenceKillTimer(timer);
    }

    /// <summary>Arms (or re-arms) the timer to fire <paramref name="after"/> from now; at least one nanosecond.</summary>
    public void Arm(TimeSpan after)
    {
        var ns = Math.Max(1L, after.Ticks * 100);
        Set(new TimeSpec { Seconds = ns / 1_000_000_000, Nanoseconds = ns % 1_000_000_000 });
    }

    public void Disarm() => Set(default);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _ = TimerDelete(_timer);
            _timer = 0;
        }
    }

    private void Set(TimeSpec value)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var spec = new ITimerSpec { Value = value };
        if (TimerSetTime(_timer, 0, &spec, null) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new VmfsException(VmfsErrorCode.Io, $"cannot set the fencing kill timer (timer_settime: {Libc.ErrorText(errno)}).");
        }
    }

    [LibraryImport("libc", EntryPoint = "timer_create", SetLastError = true)]
    private static partial int TimerCreate(int clock, SigEvent* ev, nint* timer);

    [LibraryImport("libc", EntryPoint = "timer_settime", SetLastError = true)]
    private static partial int TimerSetTime(nint timer, int flags, ITimerSpec* value, ITimerSpec* old);

    [LibraryImport("libc", EntryPoint = "timer_delete", SetLastError = true)]
    private static partial int TimerDelete(nint timer);

    /// <summary>struct sigevent of 64-bit Linux (glibc): value, signo, notify, then a 48-byte union.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 64)]
    private struct SigEvent
    {
        [FieldOffset(8)]
        public int Signo;

        [FieldOffset(12)]
        public int Notify;
    }

    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private struct ITimerSpec
    {
        public TimeSpec Interval;
        public TimeSpec Value;
    }
}
