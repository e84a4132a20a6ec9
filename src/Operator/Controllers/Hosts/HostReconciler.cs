using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.Runtime.Reconcile;
using HostObject = Vmk.Operator.Apis.V1Alpha1.Host;

namespace Vmk.Operator.Controllers.Hosts;

/// <summary>
/// Judges each Host's heartbeat. vmkerneld writes status (phase Ready, heartbeat) every report interval; when
/// its heartbeat is older than the grace period the daemon has stopped reporting (dead, partitioned, stuck), and
/// nobody else would say so: this marks the Host NotReady with a reason. The daemon itself sets Ready again on
/// its next report. Hosts are never deleted here. A Host with a current heartbeat is checked again just after
/// its heartbeat would go stale: the one deliberate timer of this controller (one reconcile per host per grace
/// period, independent of the number of VMs).
/// </summary>
public sealed class HostReconciler(StatusWriter status, EventRecorder events, TimeSpan grace, ILogger<HostReconciler> logger,
    Migrations.HostMaintenance? maintenance = null) : IReconciler<HostObject>
{
    public const string StaleReason = "HeartbeatStale";

    public TimeSpan Grace => grace;

    public async Task<ReconcileResult> ReconcileAsync(HostObject host, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        var age = host.HeartbeatAgeSeconds(now);
        // Maintenance (spec.maintenance) polls while VMs are being moved off: the other timer of this controller.
        var evacuation = maintenance is null ? null : await maintenance.ReconcileAsync(host, ct).ConfigureAwait(false);
        // A Host the daemon has just created has no heartbeat until its first status write, a moment later:
        // judged only once the grace has passed since its creation, never on the first sight of the object.
        if (age is null && now - host.Created is { } since && since < grace)
        {
            return ReconcileResult.RequeueAfter(grace - since + TimeSpan.FromSeconds(1));
        }
        if (age is { } a && a <= grace.TotalSeconds)
        {
            var next = grace - TimeSpan.FromSeconds(a) + TimeSpan.FromSeconds(1);
            return ReconcileResult.RequeueAfter(evacuation is { } e && e < next ? e : next);
        }
        if (host.Phase is "NotReady" or "Maintenance" or "EnteringMaintenance" && Conditions.Get(host.Status, "Ready") is { } ready
            && CustomObject(ready, "reason") == StaleReason)
        {
            return ReconcileResult.Done;
        }
        var message = age is null
            ? $"vmkerneld on host {host.Name} has never reported a heartbeat: check that the daemon runs there and can reach the API server"
            : $"vmkerneld on host {host.Name} last reported {age.Value.ToString("0", CultureInfo.InvariantCulture)} s ago (grace {grace.TotalSeconds:0} s): check the daemon and the host's network; VMs there are not managed until it reports again";
        var newStatus = new JsonObject
        {
            ["phase"] = host.Phase is "Maintenance" or "EnteringMaintenance" ? host.Phase : "NotReady",
            ["conditions"] = Conditions.Set(host.Status, "Ready", false, StaleReason, message, null),
        };
        await status.PatchAsync(host, HostObject.Plural, newStatus, ct).ConfigureAwait(false);
        logger.LogWarning("Host {Host} is NotReady: {Message}", host.Name, message);
        await events.WarningAsync(host, "HostNotReady", message, ct).ConfigureAwait(false);
        return ReconcileResult.Done;
    }

    private static string? CustomObject(JsonNode node, string field) => Apis.V1Alpha1.CustomObject.Str(node, field);
}
