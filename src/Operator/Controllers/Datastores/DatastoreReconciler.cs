using System.Globalization;
using System.Text.Json.Nodes;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Reconcile;
using DatastoreObject = Vmk.Operator.Apis.V1Alpha1.Datastore;

namespace Vmk.Operator.Controllers.Datastores;

/// <summary>
/// Mounts a Datastore on every Ready host its hostSelector picks (DatastoreService.Mount: a missing backing file
/// is created at spec.device.size, a blank device is formatted when spec.format.autoFormat, anything else that is
/// not VMFS is refused by the daemon and shown as Ready=False with its words). Status: capacity, free, each
/// selected host's mount and heartbeat age. Failures are retried every 30 s; a healthy datastore is refreshed
/// every 5 minutes (the deliberate long resync: free space and heartbeat ages change without any event).
/// The finalizer unmounts it everywhere; the daemon refuses while VMs use it, and the object then waits.
/// </summary>
public sealed class DatastoreReconciler(
    IResourceApi<DatastoreObject> api,
    HostDirectory hosts,
    DaemonConnectionPool daemons,
    StatusWriter status,
    EventRecorder events,
    ILogger<DatastoreReconciler> logger) : IReconciler<DatastoreObject>
{
    public const string Finalizer = "vmkernel.io/datastore";
    public static readonly TimeSpan Refresh = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan RetryFailed = TimeSpan.FromSeconds(30);

    private readonly FinalizerSet<DatastoreObject> _finalizers = new FinalizerSet<DatastoreObject>(api).Register(Finalizer, (ds, ct) => UnmountEverywhereAsync(ds, hosts, daemons, ct));

    public async Task<ReconcileResult> ReconcileAsync(DatastoreObject ds, CancellationToken ct)
    {
        var step = await _finalizers.ApplyAsync(ds, ct).ConfigureAwait(false);
        if (step.Result is { } done)
        {
            return done;
        }
        ds = step.Object;
        var selected = hosts.All.Where(h => LabelSelector.Matches(CustomObject.At(ds.Spec, "hostSelector"), h.Metadata.Labels))
            .OrderBy(h => h.Name, StringComparer.Ordinal).ToList();
        var results = await Task.WhenAll(selected.Select(h => MountOnAsync(ds, h, ct))).ConfigureAwait(false);

        var mounted = results.Where(r => r.Mounted is not null).ToList();
        var hostArray = new JsonArray();
        foreach (var r in results)
        {
            var item = new JsonObject { ["host"] = r.Host, ["mounted"] = r.Mounted is not null };
            if (r.Mounted is { } m)
            {
                item["slot"] = m.HostSlot;
                if (m.HeartbeatAgeSeconds >= 0)
                {
                    item["heartbeatAgeSeconds"] = Math.Round(m.HeartbeatAgeSeconds, 3);
                }
                if (m.Fenced || !string.IsNullOrEmpty(m.Problem))
                {
                    item["message"] = m.Fenced ? "fenced: " + m.Problem : m.Problem;
                }
            }
            else
            {
                item["message"] = r.Error;
            }
            hostArray.Add(item);
        }
        var ready = selected.Count > 0 && results.All(r => r.Mounted is not null || r.Skipped);
        ready &= mounted.Count > 0;
        var (reason, message) = selected.Count == 0
            ? ("NoHosts", "no Host matches spec.hostSelector (or no vmkerneld has registered yet): label hosts or change the selector")
            : ready
                ? ("Mounted", $"mounted on {mounted.Count} host(s): {string.Join(", ", mounted.Select(r => r.Host))}")
                : mounted.Count == 0 && results.All(r => r.Skipped)
                    ? ("NoReadyHosts", "none of the selected hosts is Ready: " + string.Join("; ", results.Select(r => $"{r.Host}: {r.Error}")))
                    : ("MountFailed", string.Join("; ", results.Where(r => r.Mounted is null && !r.Skipped).Select(r => $"{r.Host}: {r.Error}")));

        var newStatus = new JsonObject
        {
            ["mountedHosts"] = mounted.Count,
            ["hosts"] = hostArray,
            ["observedGeneration"] = ds.Metadata.Generation ?? 0,
            ["conditions"] = Conditions.Set(ds.Status, "Ready", ready, reason, message, ds.Metadata.Generation),
        };
        if (mounted.FirstOrDefault()?.Mounted is { } any)
        {
            newStatus["uuid"] = any.Uuid;
            newStatus["capacity"] = any.CapacityBytes.ToString(CultureInfo.InvariantCulture);
            newStatus["free"] = any.FreeBytes.ToString(CultureInfo.InvariantCulture);
        }
        var wasReady = Conditions.Get(ds.Status, "Ready") is { } c ? CustomObject.Str(c, "status") : null;
        var wasReason = Conditions.Get(ds.Status, "Ready") is { } c2 ? CustomObject.Str(c2, "reason") : null;
        await status.PatchAsync(ds, DatastoreObject.Plural, newStatus, ct).ConfigureAwait(false);
        if (wasReady != (ready ? "True" : "False") || wasReason != reason)
        {
            await (ready ? events.NormalAsync(ds, reason, message, ct) : events.WarningAsync(ds, reason, message, ct)).ConfigureAwait(false);
        }
        return ready ? ReconcileResult.RequeueAfter(Refresh) : ReconcileResult.RequeueAfter(RetryFailed);
    }

    private async Task<MountResult> MountOnAsync(DatastoreObject ds, Apis.V1Alpha1.Host host, CancellationToken ct)
    {
        if (!host.IsReady)
        {
            return new MountResult(host.Name, null, $"host is {host.Phase ?? "not reporting"}", Skipped: true);
        }
        var client = daemons.Datastores(host.Name, host.Endpoint!);
        try
        {
            try
            {
                var current = await client.GetAsync(new DatastoreRef { Name = ds.Name }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                if (current.Mounted)
                {
                    return new MountResult(host.Name, current, null);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
            var request = new MountDatastoreRequest
            {
                Name = ds.Name,
                DevicePath = ds.DevicePath,
                FormatIfBlank = ds.AutoFormat,
                CreateSizeBytes = ds.IsFile ? ds.DeviceSizeBytes : 0,
            };
            var result = await client.MountAsync(request, deadline: Rpc.Deadline(120), cancellationToken: ct).ConfigureAwait(false);
            logger.LogInformation("Datastore {Datastore} mounted on {Host} from {Device}", ds.Name, host.Name, ds.DevicePath);
            return new MountResult(host.Name, result, null);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogWarning("Datastore {Datastore} cannot be mounted on {Host}: {Error}", ds.Name, host.Name, Rpc.Describe(e));
            return new MountResult(host.Name, null, Rpc.Describe(e));
        }
    }

    private static async Task UnmountEverywhereAsync(DatastoreObject ds, HostDirectory hosts, DaemonConnectionPool daemons, CancellationToken ct)
    {
        foreach (var host in hosts.Ready)
        {
            try
            {
                await daemons.Datastores(host.Name, host.Endpoint!).UnmountAsync(new DatastoreRef { Name = ds.Name }, deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
        }
    }

    private sealed record MountResult(string Host, DatastoreStatus? Mounted, string? Error, bool Skipped = false);
}
