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
using VmObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachine;

namespace Vmk.Operator.Controllers.VirtualMachines;

/// <summary>
/// Drives a VirtualMachine onto a host: validate what a person could get wrong, place it (<see cref="Placement"/>),
/// persist status.host before anything runs (a restarted operator finds the VM where it was put), create or clone
/// its disks under names derived from namespace/vm/disk, define it on the daemon and power it as spec.runPolicy
/// says. Level-based: every pass compares the daemon's state with the spec and does the one step missing, so a
/// pass repeated after a crash at any point does nothing twice. The daemons' VM watch streams requeue the VM on
/// every change of its guest (<see cref="DaemonVmWatcher"/>); there is no periodic resync. Deletion goes through
/// a finalizer: stop, delete on the daemon, delete the disks unless the annotation vmkernel.io/keep-disks is "true".
/// </summary>
public sealed class VirtualMachineReconciler(
    IResourceApi<VmObject> api,
    HostDirectory hosts,
    Func<ObjectCache<Apis.V1Alpha1.Datastore>?> datastores,
    Func<ObjectCache<Apis.V1Alpha1.PortGroup>?> portGroups,
    Placement placement,
    DaemonConnectionPool daemons,
    StatusWriter status,
    EventRecorder events,
    ILogger<VirtualMachineReconciler> logger) : IReconciler<VmObject>
{
    public const string Finalizer = "vmkernel.io/virtualmachine";
    public const string KeepDisksAnnotation = "vmkernel.io/keep-disks";
    /// <summary>Manual run policy: "on" or "off" asks for that power state (what `vmctl power` sets).</summary>
    public const string PowerAnnotation = "vmkernel.io/power";
    public static readonly TimeSpan RetryUnsatisfiable = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan RetryFailed = TimeSpan.FromSeconds(20);

    private readonly FinalizerSet<VmObject> _finalizers = new FinalizerSet<VmObject>(api).Register(Finalizer, (vm, ct) => Task.CompletedTask);

    public async Task<ReconcileResult> ReconcileAsync(VmObject vm, CancellationToken ct)
    {
        if (Finalizers.IsBeingDeleted(vm) && Finalizers.Has(vm, Finalizer))
        {
            // Done here rather than in the FinalizerSet callback so a failure can be written to status first.
            if (!await CleanUpAsync(vm, ct).ConfigureAwait(false))
            {
                return ReconcileResult.RequeueAfter(RetryFailed);
            }
            placement.Forget(ObjectKey.Of(vm));
        }
        var step = await _finalizers.ApplyAsync(vm, ct).ConfigureAwait(false);
        if (step.Result is { } done)
        {
            return done;
        }
        vm = step.Object;

        if (CustomObject.Str(vm.Status, "migration", "name") is { Length: > 0 })
        {
            // A VirtualMachineMigration owns the VM until it ends (it then moves status.host and clears this): a pass
            // now could define or start the guest on the host that is handing it over.
            await status.PatchAsync(vm, VmObject.Plural, new JsonObject { ["phase"] = "Migrating" }, ct).ConfigureAwait(false);
            return ReconcileResult.Done;
        }

        var hostName = vm.AssignedHost;
        if (hostName is null)
        {
            if (vm.RunPolicy == "Halted")
            {
                return await WriteAsync(vm, "Stopped", null, true, "Halted", "spec.runPolicy is Halted: the VM is not placed or started", ct, null).ConfigureAwait(false);
            }
            if (Validate(vm) is { } invalid)
            {
                await WriteAsync(vm, "Pending", null, false, invalid.Reason, invalid.Message, ct, null).ConfigureAwait(false);
                return ReconcileResult.RequeueAfter(RetryUnsatisfiable);
            }
            var (chosen, why) = placement.Choose(vm, out var settling);
            if (settling)
            {
                // Datastore and PortGroup changes requeue every VM; the delay only bounds the wait.
                return ReconcileResult.RequeueAfter(TimeSpan.FromSeconds(2));
            }
            if (chosen is null)
            {
                await WriteAsync(vm, "Pending", null, false, "Unschedulable",
                    "no host can run this VM: " + why + ". Free capacity, lower the reservations, or relax spec.placement", ct, null).ConfigureAwait(false);
                return ReconcileResult.RequeueAfter(RetryUnsatisfiable);
            }
            try
            {
                // Persisted before any disk or QEMU exists: whoever reconciles next finds the VM on this host.
                vm = await status.PatchAsync(vm, VmObject.Plural, new JsonObject
                {
                    ["host"] = chosen,
                    ["phase"] = "Scheduling",
                    ["conditions"] = Conditions.Set(vm.Status, "Scheduled", true, "Scheduled", $"placed on host {chosen}", vm.Metadata.Generation),
                }, ct).ConfigureAwait(false);
            }
            catch
            {
                placement.Forget(ObjectKey.Of(vm));
                throw;
            }
            await events.NormalAsync(vm, "Scheduled", $"placed on host {chosen}", ct).ConfigureAwait(false);
            hostName = chosen;
        }

        var host = hosts.Get(hostName);
        if (host is null || !host.IsReady)
        {
            await WriteAsync(vm, "Unknown", null, false, "HostNotReady",
                $"host {hostName} is {(host is null ? "gone" : host.Phase ?? "not reporting")}: the VM's state there is unknown until its vmkerneld reports again", ct, host).ConfigureAwait(false);
            return ReconcileResult.Done; // the Host coming back requeues its VMs
        }
        var spec = VmSpecBuilder.Build(vm);
        var vmClient = daemons.Vms(host.Name, host.Endpoint!);

        if (await EnsureDisksAsync(vm, host, ct).ConfigureAwait(false) is { } diskProblem)
        {
            await WriteAsync(vm, "Pending", null, false, diskProblem.Reason, diskProblem.Message, ct, host).ConfigureAwait(false);
            return ReconcileResult.RequeueAfter(RetryFailed);
        }

        Vm? current;
        try
        {
            current = await vmClient.GetAsync(new VmRef { Name = spec.Name }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            current = null;
        }
        try
        {
            if (current is null)
            {
                current = await vmClient.DefineAsync(new DefineVmRequest { Spec = spec }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                await events.NormalAsync(vm, "Defined", $"defined as {spec.Name} on host {host.Name}", ct).ConfigureAwait(false);
            }
            else if (!current.Spec.Equals(spec) && !IsPoweredOn(current.Status.State))
            {
                current = await vmClient.DefineAsync(new DefineVmRequest { Spec = spec, AllowUpdate = true }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                await events.NormalAsync(vm, "Updated", $"spec of {spec.Name} updated on host {host.Name}", ct).ConfigureAwait(false);
            }
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.InvalidArgument or StatusCode.AlreadyExists)
        {
            await WriteAsync(vm, "Failed", current, false, e.StatusCode == StatusCode.InvalidArgument ? "InvalidSpec" : "DefineFailed",
                $"host {host.Name} refused the VM: {Rpc.Describe(e)}", ct, host).ConfigureAwait(false);
            return ReconcileResult.RequeueAfter(RetryUnsatisfiable);
        }

        var (action, wait) = Decide(vm, current);
        if (wait is { } backoff)
        {
            await WriteAsync(vm, Phase(vm, current), current, false, "CrashLoopBackOff",
                $"the guest stopped ({current.Status.Reason}); restarting in {backoff.TotalSeconds:0} s (restart {RestartCount(vm) + 1})", ct, host).ConfigureAwait(false);
            return ReconcileResult.RequeueAfter(backoff);
        }
        var extra = new JsonObject();
        try
        {
            switch (action)
            {
                case PowerAction.Start:
                    var restart = vm.Status?["startTime"] is not null;
                    current = await vmClient.StartAsync(new VmRef { Name = spec.Name }, deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
                    extra["startTime"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
                    if (restart)
                    {
                        extra["restartCount"] = RestartCount(vm) + 1;
                    }
                    await events.NormalAsync(vm, restart ? "Restarted" : "Started", $"started on host {host.Name}", ct).ConfigureAwait(false);
                    break;
                case PowerAction.Stop:
                    current = await vmClient.ShutdownAsync(new ShutdownVmRequest { Name = spec.Name, TimeoutSeconds = 30 }, deadline: Rpc.Deadline(90), cancellationToken: ct).ConfigureAwait(false);
                    await events.NormalAsync(vm, "Stopped", $"powered off on host {host.Name} (runPolicy {vm.RunPolicy})", ct).ConfigureAwait(false);
                    break;
            }
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.ResourceExhausted or StatusCode.FailedPrecondition or StatusCode.InvalidArgument)
        {
            var reason = e.StatusCode == StatusCode.ResourceExhausted ? "InsufficientResources" : "StartFailed";
            await WriteAsync(vm, "Failed", current, false, reason, $"host {host.Name}: {Rpc.Describe(e)}", ct, host).ConfigureAwait(false);
            return ReconcileResult.RequeueAfter(RetryUnsatisfiable);
        }

        var phase = Phase(vm, current);
        var (ready, readyReason, message) = Readiness(vm, current, phase);
        await WriteAsync(vm, phase, current, ready, readyReason, message, ct, host, extra).ConfigureAwait(false);
        // Transitional states end with a daemon event; the short requeue only covers a watch stream that is down.
        if (phase is "Starting" or "Stopping" or "Scheduling")
        {
            return ReconcileResult.RequeueAfter(TimeSpan.FromSeconds(15));
        }
        return ReconcileResult.Done;
    }

    private (string Reason, string Message)? Validate(VmObject vm)
    {
        var kernel = CustomObject.Str(vm.Spec, "boot", "kernel");
        var bootDisk = CustomObject.Str(vm.Spec, "boot", "disk");
        if (string.IsNullOrEmpty(kernel) && string.IsNullOrEmpty(bootDisk))
        {
            return ("InvalidSpec", "spec.boot: give boot.kernel (direct kernel boot) or boot.disk");
        }
        var i = 0;
        foreach (var d in vm.Disks)
        {
            var name = CustomObject.Str(d, "datastore") ?? "";
            if (CustomObject.At(d, "size") is null && CustomObject.Str(d, "cloneFrom") is null)
            {
                return ("InvalidSpec", $"spec.disks[{i}] ({CustomObject.Str(d, "name")}): give size (a new disk) or cloneFrom (a linked clone of a disk on the datastore)");
            }
            var ds = datastores()?.Get(null, name);
            if (ds is null)
            {
                return ("DatastoreNotFound", $"spec.disks[{i}].datastore: Datastore {name} does not exist; create it (kubectl get datastores lists them)");
            }
            if (!hosts.Ready.Any(h => DatastoreMounted(name, h.Name)))
            {
                return ("DatastoreNotMounted", $"spec.disks[{i}].datastore: Datastore {name} is not mounted on any Ready host: {ReadyMessage(ds)}");
            }
            i++;
        }
        i = 0;
        foreach (var n in vm.Nics)
        {
            var name = CustomObject.Str(n, "portGroup") ?? "";
            if (portGroups()?.Get(null, name) is null)
            {
                return ("PortGroupNotFound", $"spec.nics[{i}].portGroup: PortGroup {name} does not exist; create it (kubectl get portgroups lists them)");
            }
            i++;
        }
        return null;
    }

    private static string ReadyMessage(CustomObject obj) => Conditions.Get(obj.Status, "Ready") is { } c ? CustomObject.Str(c, "message") ?? "" : "not reconciled yet";

    /// <summary>Whether a datastore is mounted on a host: per the Datastore's status or the Host's own report.</summary>
    public bool DatastoreMounted(string datastore, string host)
    {
        var ds = datastores()?.Get(null, datastore);
        if (ds is not null && CustomObject.Array(ds.Status, "hosts").Any(h => CustomObject.Str(h, "host") == host && CustomObject.Bool(h, false, "mounted")))
        {
            return true;
        }
        return hosts.Get(host)?.HasDatastoreMounted(datastore) == true;
    }

    public bool PortGroupRealized(string portGroup, string host) => portGroups()?.Get(null, portGroup)?.RealizedHosts.Contains(host) == true;

    private async Task<(string Reason, string Message)?> EnsureDisksAsync(VmObject vm, Apis.V1Alpha1.Host host, CancellationToken ct)
    {
        var disks = vm.Disks.ToList();
        if (disks.Count == 0)
        {
            return null;
        }
        var client = daemons.Datastores(host.Name, host.Endpoint!);
        var ns = vm.Namespace ?? "default";
        foreach (var group in disks.GroupBy(d => CustomObject.Str(d, "datastore") ?? ""))
        {
            HashSet<string> existing;
            try
            {
                var list = await client.ListDisksAsync(new DatastoreRef { Name = group.Key }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                existing = list.Disks.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.FailedPrecondition)
            {
                return ("DatastoreNotMounted", $"datastore {group.Key} is not usable on host {host.Name}: {Rpc.Describe(e)}");
            }
            foreach (var d in group)
            {
                var name = VmNames.DiskName(ns, vm.Name, CustomObject.Str(d, "name") ?? "");
                if (existing.Contains(name))
                {
                    continue;
                }
                try
                {
                    if (CustomObject.Str(d, "cloneFrom") is { Length: > 0 } baseDisk)
                    {
                        await client.CloneDiskAsync(new CloneDiskRequest { Datastore = group.Key, Base = baseDisk, Name = name }, deadline: Rpc.Deadline(120), cancellationToken: ct).ConfigureAwait(false);
                        await events.NormalAsync(vm, "DiskCloned", $"disk {name} cloned from {baseDisk} on datastore {group.Key}", ct).ConfigureAwait(false);
                    }
                    else
                    {
                        var size = CustomObject.Quantity(d, false, "size") ?? 0;
                        await client.CreateDiskAsync(new CreateDiskRequest { Datastore = group.Key, Name = name, SizeBytes = size, Thick = !CustomObject.Bool(d, true, "thin") },
                            deadline: Rpc.Deadline(300), cancellationToken: ct).ConfigureAwait(false);
                        await events.NormalAsync(vm, "DiskCreated", $"disk {name} ({size} bytes) created on datastore {group.Key}", ct).ConfigureAwait(false);
                    }
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.InvalidArgument or StatusCode.NotFound)
                {
                    return ("DiskFailed", $"disk {CustomObject.Str(d, "name")} on datastore {group.Key}: {Rpc.Describe(e)}");
                }
            }
        }
        return null;
    }

    private enum PowerAction
    {
        None,
        Start,
        Stop,
    }

    private static bool IsPoweredOn(VmState s) => s is VmState.Running or VmState.Starting or VmState.Paused or VmState.Stopping;

    private static int RestartCount(VmObject vm) => (int)(CustomObject.Long(vm.Status, "restartCount") ?? 0);

    /// <summary>What the run policy asks for given the daemon's state, and a back-off before restarting a guest that keeps failing.</summary>
    private static (PowerAction Action, TimeSpan? Wait) Decide(VmObject vm, Vm current)
    {
        var state = current.Status.State;
        var on = IsPoweredOn(state);
        var everStarted = vm.Status?["startTime"] is not null;
        var power = vm.Metadata.Annotations?.TryGetValue(PowerAnnotation, out var p) == true ? p.ToLowerInvariant() : null;
        var action = vm.RunPolicy switch
        {
            "Halted" => on ? PowerAction.Stop : PowerAction.None,
            "Manual" => power == "on" && !on ? PowerAction.Start : power == "off" && on ? PowerAction.Stop : PowerAction.None,
            "RerunOnFailure" => !on && (!everStarted || state == VmState.Failed) ? PowerAction.Start : PowerAction.None,
            "Once" => !on && !everStarted ? PowerAction.Start : PowerAction.None,
            _ => on ? PowerAction.None : PowerAction.Start,
        };
        if (action == PowerAction.Start && everStarted && current.Status.Since is { } since)
        {
            // Restart at once the first time, then back off (5 s doubling to 5 min) so a guest that dies at boot does not spin.
            var restarts = RestartCount(vm);
            var delay = restarts == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(300, 5 * Math.Pow(2, Math.Min(restarts - 1, 6))));
            var remaining = since.ToDateTimeOffset() + delay - DateTimeOffset.UtcNow;
            if (remaining > TimeSpan.Zero)
            {
                return (PowerAction.None, remaining);
            }
        }
        return (action, null);
    }

    private static string Phase(VmObject vm, Vm? current)
    {
        if (current is null)
        {
            return "Pending";
        }
        if (!string.IsNullOrEmpty(current.Status.Migration))
        {
            return "Migrating";
        }
        return current.Status.State switch
        {
            VmState.Running or VmState.Paused => "Running",
            VmState.Starting => "Starting",
            VmState.Stopping => "Stopping",
            VmState.Failed => "Failed",
            VmState.Stopped when vm.RunPolicy is "Once" or "RerunOnFailure" && vm.Status?["startTime"] is not null => "Succeeded",
            VmState.Stopped => "Stopped",
            _ => "Unknown",
        };
    }

    private static (bool Ready, string Reason, string Message) Readiness(VmObject vm, Vm current, string phase)
    {
        var reason = string.IsNullOrEmpty(current.Status.Reason) ? "" : $" ({current.Status.Reason})";
        return phase switch
        {
            "Running" => (true, "Running", $"the guest runs{reason}"),
            "Migrating" => (true, "Migrating", $"live migration in progress: {current.Status.Migration}"),
            "Stopped" when vm.RunPolicy is "Halted" or "Manual" => (true, "Stopped", $"powered off as spec.runPolicy {vm.RunPolicy} asks{reason}"),
            "Succeeded" => (true, "Completed", $"the guest ran and shut down cleanly; runPolicy {vm.RunPolicy} does not restart it{reason}"),
            "Failed" => (false, "GuestFailed", $"the VM failed{reason}; runPolicy {vm.RunPolicy}" + (vm.RunPolicy is "Always" or "RerunOnFailure" ? " restarts it" : " leaves it stopped")),
            _ => (false, phase, $"the VM is {phase.ToLowerInvariant()}{reason}"),
        };
    }

    private async Task<ReconcileResult> WriteAsync(VmObject vm, string phase, Vm? current, bool ready, string reason, string message, CancellationToken ct,
        Apis.V1Alpha1.Host? host, JsonObject? extra = null)
    {
        var newStatus = new JsonObject
        {
            ["phase"] = phase,
            ["observedGeneration"] = vm.Metadata.Generation ?? 0,
            ["conditions"] = Conditions.Set(vm.Status, "Ready", ready, reason, message, vm.Metadata.Generation),
        };
        if (current is not null)
        {
            var ips = current.Status.GuestAddresses.SelectMany(a => a.Addresses).Select(a => a.Split('/')[0]).Distinct().ToList();
            newStatus["guest"] = new JsonObject { ["ips"] = new JsonArray([.. ips.Select(ip => (JsonNode)JsonValue.Create(ip)!)]) };
            newStatus["console"] = new JsonObject { ["serial"] = $"{vm.AssignedHost ?? host?.Name}/{current.Spec.Name}" };
        }
        if (CustomObject.Str(host?.Status, "accelerator", "mode") is { } accelerator)
        {
            newStatus["accelerator"] = accelerator;
        }
        foreach (var (k, v) in extra ?? [])
        {
            newStatus[k] = v?.DeepClone();
        }
        var before = vm.Phase;
        var beforeReason = CustomObject.Str(Conditions.Get(vm.Status, "Ready"), "reason");
        await status.PatchAsync(vm, VmObject.Plural, newStatus, ct).ConfigureAwait(false);
        if (before != phase || beforeReason != reason)
        {
            var text = $"{phase}: {message}";
            await (ready || phase is "Starting" or "Scheduling" or "Stopping" ? events.NormalAsync(vm, reason, text, ct) : events.WarningAsync(vm, reason, text, ct)).ConfigureAwait(false);
        }
        return ReconcileResult.Done;
    }

    /// <summary>Stops and deletes the VM on its host and removes its disks; false (with status written) when that cannot happen yet.</summary>
    private async Task<bool> CleanUpAsync(VmObject vm, CancellationToken ct)
    {
        var ns = vm.Namespace ?? "default";
        var name = VmNames.DaemonName(ns, vm.Name);
        var hostName = vm.AssignedHost;
        var host = hostName is null ? null : hosts.Get(hostName);
        if (hostName is not null && host is not null)
        {
            if (!host.IsReady)
            {
                await WriteAsync(vm, "Unknown", null, false, "HostNotReady",
                    $"deletion waits for host {hostName} ({host.Phase}) to stop and remove the VM; if the host is gone for good, delete its Host object", ct, host).ConfigureAwait(false);
                return false;
            }
            var client = daemons.Vms(host.Name, host.Endpoint!);
            try
            {
                var current = await client.GetAsync(new VmRef { Name = name }, deadline: Rpc.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                if (IsPoweredOn(current.Status.State))
                {
                    await client.StopAsync(new VmRef { Name = name }, deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
                }
                await client.DeleteAsync(new VmRef { Name = name }, deadline: Rpc.Deadline(60), cancellationToken: ct).ConfigureAwait(false);
                await events.NormalAsync(vm, "Deleted", $"VM {name} stopped and removed from host {hostName}", ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
        }
        var keep = vm.Metadata.Annotations?.TryGetValue(KeepDisksAnnotation, out var k) == true && string.Equals(k, "true", StringComparison.OrdinalIgnoreCase);
        if (keep || hostName is null)
        {
            return true; // disks are created only after placement
        }
        foreach (var d in vm.Disks)
        {
            var datastore = CustomObject.Str(d, "datastore") ?? "";
            var diskName = VmNames.DiskName(ns, vm.Name, CustomObject.Str(d, "name") ?? "");
            var on = host is { IsReady: true } && DatastoreMounted(datastore, host.Name) ? host : hosts.Ready.FirstOrDefault(h => DatastoreMounted(datastore, h.Name));
            if (on is null)
            {
                logger.LogWarning("Disk {Disk} of {Namespace}/{Vm} left on datastore {Datastore}: no Ready host has it mounted", diskName, ns, vm.Name, datastore);
                continue;
            }
            try
            {
                await daemons.Datastores(on.Name, on.Endpoint!).DeleteDiskAsync(new DiskRef { Datastore = datastore, Name = diskName }, deadline: Rpc.Deadline(120), cancellationToken: ct).ConfigureAwait(false);
                await events.NormalAsync(vm, "DiskDeleted", $"disk {diskName} deleted from datastore {datastore}", ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound || (e.StatusCode == StatusCode.FailedPrecondition && e.Status.Detail.Contains("not found", StringComparison.OrdinalIgnoreCase)))
            {
            }
        }
        return true;
    }
}
