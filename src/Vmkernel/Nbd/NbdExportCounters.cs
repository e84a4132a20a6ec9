using System.Diagnostics;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// Live per-export counters, updated with interlocked adds from every connection's I/O threads. Each operation
/// kind sits on its own cache line so reads and writes on different cores do not contend.
/// </summary>
internal sealed class NbdExportCounters
{
    private readonly OperationCounter[] _counters = new OperationCounter[Enum.GetValues<NbdOperation>().Length];

    public void Record(NbdOperation operation, long bytes, long startTimestamp, bool failed)
    {
        long elapsed = Stopwatch.GetTimestamp() - startTimestamp;
        ref var counter = ref _counters[(int)operation];
        Interlocked.Increment(ref counter.Operations);
        Interlocked.Add(ref counter.Bytes, bytes);
        Interlocked.Add(ref counter.LatencyTicks, elapsed);
        if (failed)
        {
            Interlocked.Increment(ref counter.Errors);
        }

        long max = Volatile.Read(ref counter.MaxLatencyTicks);
        while (elapsed > max)
        {
            long seen = Interlocked.CompareExchange(ref counter.MaxLatencyTicks, elapsed, max);
            if (seen == max)
            {
                break;
            }

            max = seen;
        }
    }

    public NbdOperationStats Snapshot(NbdOperation operation)
    {
        ref var counter = ref _counters[(int)operation];
        return new NbdOperationStats(
            Volatile.Read(ref counter.Operations),
            Volatile.Read(ref counter.Bytes),
            Volatile.Read(ref counter.Errors),
            Stopwatch.GetElapsedTime(0, Volatile.Read(ref counter.LatencyTicks)),
            Stopwatch.GetElapsedTime(0, Volatile.Read(ref counter.MaxLatencyTicks)));
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
    private struct OperationCounter
    {
        [System.Runtime.InteropServices.FieldOffset(64)] public long Operations;
        [System.Runtime.InteropServices.FieldOffset(72)] public long Bytes;
        [System.Runtime.InteropServices.FieldOffset(80)] public long Errors;
        [System.Runtime.InteropServices.FieldOffset(88)] public long LatencyTicks;
        [System.Runtime.InteropServices.FieldOffset(96)] public long MaxLatencyTicks;
    }
}
