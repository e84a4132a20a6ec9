using System.Text.Json.Nodes;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Reconcile;
using PortGroupObject = Vmk.Operator.Apis.V1Alpha1.PortGroup;

namespace Vmk.Operator.Controllers.PortGroups;

/// <summary>
/// Realizes a PortGroup on every Ready host (PortGroupService.Apply), handing each host the underlay addresses
/// of the others as VXLAN peers (the host part of their spec.endpoint). Host changes (a host joins, leaves or
/// moves) requeue every port group, so the peer lists follow. Deletion: while VirtualMachines still have a NIC on
/// it, the port group stays with Ready=False naming them; then Remove runs on every host.
/// </summary>
public sealed class PortGroupReconciler(
    IResourceApi<PortGroupObject> api,
    HostDirectory hosts,
    Func<ObjectCache<VirtualMachine>?> vms,
    DaemonConnectionPool daemons,
    StatusWriter status,
    EventRecorder events,
    ILogger<PortGroupReconciler> logger) : IReconciler<PortGroupObject>
{
    public const string Finalizer = "vmkernel.io/portgroup";
    public static readonly TimeSpan RetryFailed = TimeSpan.FromSeconds(30);

    private readonly FinalizerSet<PortGroupObject> _finalizers = new FinalizerSet<PortGroupObject>(api).Register(Finalizer, (pg, ct) => RemoveEverywhereAsync(pg, hosts, daemons, ct));

    public async Task<ReconcileResult> ReconcileAsync(PortGroupObject pg, CancellationToken ct)
    {
        if (Finalizers.IsBeingDeleted(pg) && Finalizers.Has(pg, Finalizer))
        {
            var users = (vms()?.List() ?? []).Where(v => v.PortGroups.Contains(pg.Name)).Select(v => $"{v.Namespace}/{v.Name}").Order(StringComparer.Ordinal).ToList();
            if (users.Count > 0)
            {
                var message = $"port group is being deleted but VirtualMachine(s) {string.Join(", ", users)} still have a NIC on it: delete them or move their NICs; it goes once none is left";
                await status.PatchAsync(pg, PortGroupObject.Plural, new JsonObject { ["conditions"] = Conditions.Set(pg.Status, "Ready", false, "InUse", message, pg.Metadata.Generation) }, ct).ConfigureAwait(false);
                // VirtualMachine deletions requeue port groups too; this is the fallback.
                return ReconcileResult.RequeueAfter(RetryFailed);
            }
        }
        var step = await _finalizers.ApplyAsync(pg, ct).ConfigureAwait(false);
        if (step.Result is { } done)
        {
            return done;
        }
        pg = step.Object;
        var ready = hosts.Ready;
        var results = await Task.WhenAll(ready.Select(h => ApplyOnAsync(pg, h, ready, ct))).ConfigureAwait(false);
        var hostArray = new JsonArray();
        foreach (var r in results)
        {
            var item = new JsonObject { ["host"] = r.Host, ["realized"] = r.Status?.Realized == true };
            if (!string.IsNullOrEmpty(r.Status?.Bridge))
            {
                item["bridge"] = r.Status.Bridge;
            }
            var problem = r.Error ?? (string.IsNullOrEmpty(r.Status?.Problem) ? null : r.Status.Problem);
            if (problem is not null)
            {
                item["message"] = problem;
            }
            hostArray.Add(item);
        }
        var realized = results.Where(r => r.Status?.Realized == true).Select(r => r.Host).ToList();
        var ok = ready.Count > 0 && realized.Count == ready.Count;
        var (reason, text) = ready.Count == 0
            ? ("NoReadyHosts", "no Host is Ready: the port group is realized once a vmkerneld reports")
            : ok
                ? ("Realized", $"realized on {realized.Count} host(s): {string.Join(", ", realized)}")
                : ("NotRealized", string.Join("; ", results.Where(r => r.Status?.Realized != true).Select(r => $"{r.Host}: {r.Error ?? r.Status?.Problem ?? "not realized"}")));
        var newStatus = new JsonObject
        {
            ["realizedHosts"] = realized.Count,
            ["hosts"] = hostArray,
            ["observedGeneration"] = pg.Metadata.Generation ?? 0,
            ["conditions"] = Conditions.Set(pg.Status, "Ready", ok, reason, text, pg.Metadata.Generation),
        };
        if (CustomObject.Long(pg.Spec, "uplink", "vni") is { } vni)
        {
            newStatus["vni"] = vni;
        }
        var before = Conditions.Get(pg.Status, "Ready");
        await status.PatchAsync(pg, PortGroupObject.Plural, newStatus, ct).ConfigureAwait(false);
        if (CustomObject.Str(before, "status") != (ok ? "True" : "False") || CustomObject.Str(before, "reason") != reason)
        {
            await (ok ? events.NormalAsync(pg, reason, text, ct) : events.WarningAsync(pg, reason, text, ct)).ConfigureAwait(false);
        }
        return ok ? ReconcileResult.Done : ReconcileResult.RequeueAfter(RetryFailed);
    }

    internal static PortGroupSpec ToSpec(PortGroupObject pg, IEnumerable<string> peers)
    {
        var spec = pg.Spec;
        var result = new PortGroupSpec
        {
            Name = pg.Name,
            Vswitch = CustomObject.Str(spec, "vswitch") ?? "vSwitch0",
            VlanId = (int)(CustomObject.Long(spec, "vlanId") ?? 0),
            Vni = (int)(CustomObject.Long(spec, "uplink", "vni") ?? 0),
            UplinkType = CustomObject.Str(spec, "uplink", "type") ?? "vxlan",
            UplinkInterface = CustomObject.Str(spec, "uplink", "interface") ?? "",
            Mtu = (int)(CustomObject.Long(spec, "uplink", "mtu") ?? 0),
            Security = new PortGroupSecurity
            {
                AllowPromiscuous = CustomObject.Bool(spec, false, "security", "promiscuous"),
                AllowMacChanges = CustomObject.Bool(spec, false, "security", "macChanges"),
                AllowForgedTransmits = CustomObject.Bool(spec, false, "security", "forgedTransmits"),
            },
            TrafficShaping = new TrafficShaping
            {
                Enabled = CustomObject.Bool(spec, false, "trafficShaping", "enabled"),
                AverageBitsPerSecond = CustomObject.Quantity(spec, false, "trafficShaping", "averageBandwidth") ?? 0,
                PeakBitsPerSecond = CustomObject.Quantity(spec, false, "trafficShaping", "peakBandwidth") ?? 0,
                BurstBytes = CustomObject.Quantity(spec, false, "trafficShaping", "burstSize") ?? 0,
            },
            Ipam = CustomObject.Str(spec, "ipam", "type") == "DHCP"
                ? new Ipam
                {
                    Cidr = CustomObject.Str(spec, "ipam", "subnet") ?? "",
                    Gateway = CustomObject.Str(spec, "ipam", "gateway") ?? "",
                    RangeStart = CustomObject.Str(spec, "ipam", "rangeStart") ?? "",
                    RangeEnd = CustomObject.Str(spec, "ipam", "rangeEnd") ?? "",
                }
                : new Ipam(),
        };
        result.VxlanPeers.AddRange(peers);
        return result;
    }

    private async Task<ApplyResult> ApplyOnAsync(PortGroupObject pg, Apis.V1Alpha1.Host host, IReadOnlyList<Apis.V1Alpha1.Host> ready, CancellationToken ct)
    {
        var peers = ready.Where(h => h.Name != host.Name).Select(h => h.UnderlayAddress).OfType<string>().Distinct().Order(StringComparer.Ordinal);
        try
        {
            var result = await daemons.PortGroups(host.Name, host.Endpoint!).ApplyAsync(ToSpec(pg, peers), deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
            return new ApplyResult(host.Name, result, null);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            logger.LogWarning("Port group {PortGroup} cannot be applied on {Host}: {Error}", pg.Name, host.Name, Rpc.Describe(e));
            return new ApplyResult(host.Name, null, Rpc.Describe(e));
        }
    }

    private static async Task RemoveEverywhereAsync(PortGroupObject pg, HostDirectory hosts, DaemonConnectionPool daemons, CancellationToken ct)
    {
        foreach (var host in hosts.Ready)
        {
            try
            {
                await daemons.PortGroups(host.Name, host.Endpoint!).RemoveAsync(new PortGroupRef { Name = pg.Name }, deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.Unimplemented)
            {
            }
        }
    }

    private sealed record ApplyResult(string Host, PortGroupStatus? Status, string? Error);
}
