using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using k8s;
using Microsoft.Extensions.Logging;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.Runtime.Informer;
using HostObject = Vmk.Operator.Apis.V1Alpha1.Host;
using MigrationObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachineMigration;
using VmObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachine;

namespace Vmk.Operator.Controllers.Migrations;

/// <summary>
/// Host.spec.maintenance: evacuates the host through one VirtualMachineMigration per powered-on VM (named after
/// the host, the VM and the attempt, so a repeated pass creates nothing twice; the migration controller's limits
/// pace them), and reports progress in the Host's phase (EnteringMaintenance while VMs are left, Maintenance when
/// empty), its MaintenanceMode condition and Events. Placement already skips hosts in maintenance. A VM whose
/// migration failed says why there (and in its own events); it is tried again a minute later.
/// </summary>
public sealed class HostMaintenance(
    IKubernetes client,
    Func<ObjectCache<VmObject>?> vms,
    Func<ObjectCache<MigrationObject>?> migrations,
    StatusWriter status,
    EventRecorder events,
    ILogger<HostMaintenance> logger)
{
    public const string HostLabel = "vmkernel.io/evacuating-host";
    /// <summary>Host annotation: spec.policy (JSON) of the migrations that evacuate it; absent: the CRD's defaults.</summary>
    public const string PolicyAnnotation = "vmkernel.io/evacuation-policy";
    public static readonly TimeSpan RetryFailed = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(3);

    /// <summary>Does one evacuation step; returns when to look again (null: nothing to watch).</summary>
    public async Task<TimeSpan?> ReconcileAsync(HostObject host, CancellationToken ct)
    {
        var maintenance = CustomObject.Bool(host.Spec, false, "maintenance");
        if (!maintenance)
        {
            if (host.Phase is "EnteringMaintenance" or "Maintenance" && host.IsReady)
            {
                await status.PatchAsync(host, HostObject.Plural, new JsonObject
                {
                    ["phase"] = "Ready",
                    ["conditions"] = Conditions.Set(host.Status, "MaintenanceMode", false, "Exited", "spec.maintenance is false: VMs may be placed here again", host.Metadata.Generation),
                }, ct).ConfigureAwait(false);
                await events.NormalAsync(host, "MaintenanceExited", "spec.maintenance is false: the host takes VMs again", ct).ConfigureAwait(false);
            }
            return null;
        }
        if (!host.IsReady)
        {
            return null; // nothing can move off a host whose daemon does not answer; its return requeues it
        }

        var all = migrations()?.List() ?? [];
        var left = new List<string>();
        foreach (var vm in (vms()?.List() ?? []).Where(v => v.AssignedHost == host.Name && v.Phase is "Running" or "Migrating" or "Starting" or "Scheduling")
            .OrderBy(v => v.Namespace, StringComparer.Ordinal).ThenBy(v => v.Name, StringComparer.Ordinal))
        {
            var mine = all.Where(m => m.Namespace == vm.Namespace && m.VmName == vm.Name && m.Metadata.Labels?.TryGetValue(HostLabel, out var h) == true && h == host.Name)
                .OrderBy(m => m.Metadata.CreationTimestamp ?? DateTime.MinValue).ToList();
            var latest = mine.LastOrDefault();
            var label = $"{vm.Namespace}/{vm.Name}";
            if (latest is { IsFinished: false })
            {
                left.Add($"{label} ({(latest.Phase ?? "Pending").ToLowerInvariant()}{(latest.IsQueued && CustomObject.Str(latest.Status, "message") is { } q ? ": " + q : "")})");
                continue;
            }
            if (latest is { Phase: "Failed" or "Cancelled" } failed
                && DateTimeOffset.UtcNow - CompletionTime(failed) < RetryFailed)
            {
                left.Add($"{label} (cannot move: {CustomObject.Str(failed.Status, "message")})");
                continue;
            }
            // None yet, or the last one finished (a success seen before the VM's status caught up, or a failure a minute old): one more attempt.
            if (latest is { Phase: "Succeeded" } && DateTimeOffset.UtcNow - CompletionTime(latest) < Poll)
            {
                left.Add($"{label} (moved)");
                continue;
            }
            var name = Truncate($"evacuate-{host.Name}-{vm.Name}") + "-" + (mine.Count + 1).ToString(CultureInfo.InvariantCulture);
            await CreateAsync(host, vm, name, ct).ConfigureAwait(false);
            left.Add($"{label} (migration {name} created)");
        }

        var empty = left.Count == 0;
        var message = empty ? "empty: every VM has moved away; no VM is placed here while spec.maintenance is true" : $"{left.Count} VMs left: {string.Join("; ", left)}";
        var before = CustomObject.Str(Conditions.Get(host.Status, "MaintenanceMode"), "message");
        await status.PatchAsync(host, HostObject.Plural, new JsonObject
        {
            ["phase"] = empty ? "Maintenance" : "EnteringMaintenance",
            ["conditions"] = Conditions.Set(host.Status, "MaintenanceMode", empty, empty ? "Empty" : "Evacuating", message, host.Metadata.Generation),
        }, ct).ConfigureAwait(false);
        if (before != message && (host.Phase != "Maintenance" || !empty))
        {
            await events.NormalAsync(host, empty ? "MaintenanceEntered" : "Evacuating", message, ct).ConfigureAwait(false);
            logger.LogInformation("Host {Host} maintenance: {Message}", host.Name, message);
        }
        return empty ? null : Poll;
    }

    private async Task CreateAsync(HostObject host, VmObject vm, string name, CancellationToken ct)
    {
        var manifest = new JsonObject
        {
            ["apiVersion"] = CustomObject.Group + "/" + CustomObject.Version,
            ["kind"] = "VirtualMachineMigration",
            ["metadata"] = new JsonObject
            {
                ["name"] = name,
                ["namespace"] = vm.Namespace,
                ["labels"] = new JsonObject { [HostLabel] = host.Name },
            },
            ["spec"] = new JsonObject { ["vmName"] = vm.Name },
        };
        if (host.Metadata.Annotations?.TryGetValue(PolicyAnnotation, out var policy) == true)
        {
            try
            {
                manifest["spec"]!["policy"] = JsonNode.Parse(policy);
            }
            catch (System.Text.Json.JsonException e)
            {
                await events.WarningAsync(host, "BadEvacuationPolicy", $"annotation {PolicyAnnotation} is not a JSON object ({e.Message}); the default policy is used", ct).ConfigureAwait(false);
            }
        }
        try
        {
            await client.CustomObjects.CreateNamespacedCustomObjectAsync(manifest, CustomObject.Group, CustomObject.Version, vm.Namespace ?? "default", MigrationObject.Plural,
                cancellationToken: ct).ConfigureAwait(false);
            await events.NormalAsync(vm, "Evacuating", $"host {host.Name} enters maintenance: migration {name} moves the VM away", ct).ConfigureAwait(false);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            // Created by the previous pass; the cache had not shown it yet.
        }
    }

    private static DateTimeOffset CompletionTime(MigrationObject m) =>
        CustomObject.Str(m.Status, "completionTime") is { } s && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : DateTimeOffset.MinValue;

    private static string Truncate(string name)
    {
        name = name.ToLowerInvariant();
        return name.Length <= 200 ? name : name[..200];
    }
}
