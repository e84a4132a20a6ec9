using System.Diagnostics.Metrics;

namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>
/// QMP command latency as a System.Diagnostics.Metrics histogram, so that the daemon can export it (Prometheus)
/// without the VMkernel depending on any metrics library. Tagged with the command and its outcome.
/// </summary>
public static class QmpMetrics
{
    public const string MeterName = "Vmk.Vmkernel.Qmp";
    public const string CommandDurationName = "vmkernel.qmp.command.duration";

    private static readonly Meter Meter = new(MeterName);

    internal static readonly Histogram<double> CommandDuration =
        Meter.CreateHistogram<double>(CommandDurationName, "s", "Time from sending a QMP command to its reply");

    internal static void Record(string command, string outcome, long startTimestamp) =>
        CommandDuration.Record(
            System.Diagnostics.Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds,
            new KeyValuePair<string, object?>("command", command),
            new KeyValuePair<string, object?>("outcome", outcome));
}
