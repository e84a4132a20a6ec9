namespace Vmk.Vmkernel.Nbd;

/// <summary>Totals for one kind of operation on one export since it was added.</summary>
/// <param name="Operations">Requests completed (successful or not).</param>
/// <param name="Bytes">Bytes the requests covered (read, written, trimmed, zeroed or queried).</param>
/// <param name="Errors">Requests answered with an error.</param>
/// <param name="TotalLatency">Sum of request latencies, from parsing the request to queuing its reply.</param>
/// <param name="MaxLatency">Slowest single request.</param>
public readonly record struct NbdOperationStats(long Operations, long Bytes, long Errors, TimeSpan TotalLatency, TimeSpan MaxLatency)
{
    public TimeSpan AverageLatency => Operations == 0 ? TimeSpan.Zero : TotalLatency / Operations;
}
