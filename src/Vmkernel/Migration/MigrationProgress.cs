using System.Text.Json;

namespace Vmk.Vmkernel.Migration;

/// <summary>One sample of a migration's progress as QEMU's query-migrate reports it on the source.</summary>
/// <param name="Phase">QEMU's migration status: setup, active, pre-switchover, device, completed, failed, cancelling, cancelled.</param>
/// <param name="TransferredBytes">RAM bytes sent so far.</param>
/// <param name="RemainingBytes">RAM bytes still to send in this iteration.</param>
/// <param name="DirtyPagesRate">Pages the guest dirties per second (0 until the first iteration ends).</param>
/// <param name="Iteration">Completed dirty-bitmap syncs (the pre-copy iteration).</param>
/// <param name="TotalTime">Time since the migration started (QEMU's total-time, final at completion).</param>
/// <param name="Downtime">The guest's pause at the switch-over as QEMU measured it (known at completion).</param>
/// <param name="Error">QEMU's error description when the migration failed.</param>
public sealed record MigrationProgress(
    string Phase,
    long TransferredBytes,
    long RemainingBytes,
    long DirtyPagesRate,
    int Iteration,
    TimeSpan TotalTime,
    TimeSpan? Downtime,
    string? Error)
{
    public bool IsTerminal => Phase is "completed" or "failed" or "cancelled";

    /// <summary>
    /// On the source's "completed" sample: from QEMU's completion until this host revoked the disks and released the
    /// leases. The sample is reported only then, so a caller may take the leases on the target as soon as it sees it.
    /// </summary>
    public TimeSpan? HandoverTime { get; init; }

    /// <summary>
    /// On the source's "completed" sample: when QEMU stopped the guest for the switch-over (QEMU's STOP event, wall
    /// clock). The target's resume time minus this is the guest's whole pause.
    /// </summary>
    public DateTimeOffset? PausedAt { get; init; }

    /// <summary>Reads QEMU's query-migrate reply (MigrationInfo).</summary>
    public static MigrationProgress FromQueryMigrate(JsonElement info)
    {
        string Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
        long Num(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;
        var ram = info.ValueKind == JsonValueKind.Object && info.TryGetProperty("ram", out var r) ? r : default;
        var hasRam = ram.ValueKind == JsonValueKind.Object;
        var status = info.ValueKind == JsonValueKind.Object ? Str(info, "status") : "";
        return new MigrationProgress(
            status.Length == 0 ? "none" : status,
            hasRam ? Num(ram, "transferred") : 0,
            hasRam ? Num(ram, "remaining") : 0,
            hasRam ? Num(ram, "dirty-pages-rate") : 0,
            hasRam ? (int)Num(ram, "dirty-sync-count") : 0,
            TimeSpan.FromMilliseconds(Num(info, "total-time")),
            info.TryGetProperty("downtime", out var d) && d.ValueKind == JsonValueKind.Number ? TimeSpan.FromMilliseconds(d.GetInt64()) : null,
            Str(info, "error-desc") is { Length: > 0 } err ? err : null)
        {
            HasSourceFigures = info.ValueKind == JsonValueKind.Object && info.TryGetProperty("total-time", out var t) && t.ValueKind == JsonValueKind.Number && t.GetInt64() > 0,
        };
    }

    /// <summary>
    /// The sample carries the source side's figures (total-time). A QEMU that was itself the target of an earlier
    /// migration answers query-migrate with that incoming migration's "completed" until its own outgoing one has
    /// left the "none" state, and without any of the source's figures. QEMU 7.2 also sets "completed" (and sends its
    /// event) a moment before its migration thread computes total-time and downtime: until then they read 0.
    /// </summary>
    public bool HasSourceFigures { get; init; }
}
