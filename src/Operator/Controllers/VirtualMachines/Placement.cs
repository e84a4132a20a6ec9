using System.Globalization;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.Runtime.Informer;
using VmObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachine;

namespace Vmk.Operator.Controllers.VirtualMachines;

/// <summary>
/// Initial placement. A host qualifies when it is Ready and schedulable, matches spec.placement (host name,
/// hostSelector), has every datastore of the VM's disks mounted and every port group of its NICs realized, and
/// has room for the VM's CPU and memory reservations in allocatable minus allocated (never over-committed). Of
/// those, the one with the least configured load (vCPUs and memory of the VMs placed there, relative to the
/// host's size) wins; ties go by name. Decisions not yet visible in the cache are remembered ("assumed", as
/// kube-scheduler does), so two VMs placed at once never both count on the same free capacity.
/// A VM created moments ago waits (<see cref="SettleTime"/> at most) while a Ready host lacks only one of its
/// datastores or port groups: applying a Datastore, a PortGroup and VMs in one `kubectl apply` would otherwise
/// put every VM on whichever host finished mounting first.
/// </summary>
public sealed class Placement(HostDirectory hosts, Func<ObjectCache<VmObject>?> vms, Func<string, string, bool> datastoreMounted, Func<string, string, bool> portGroupRealized)
{
    /// <summary>How long a new VM waits for hosts that are still mounting its datastores or realizing its port groups.</summary>
    public static readonly TimeSpan SettleTime = TimeSpan.FromSeconds(20);

    private readonly Lock _gate = new();
    private readonly Dictionary<ObjectKey, Assumed> _assumed = [];

    /// <summary>The chosen host, or null and one line per host saying why it does not fit.</summary>
    public (string? Host, string Why) Choose(VmObject vm) => Choose(vm, out _);

    /// <summary>
    /// As <see cref="Choose(VmObject)"/>; <paramref name="settling"/> is true when no host was chosen only because
    /// the VM is new and some host is still getting its datastores or port groups (ask again in a moment).
    /// </summary>
    public (string? Host, string Why) Choose(VmObject vm, out bool settling)
    {
        settling = false;
        var key = ObjectKey.Of(vm);
        lock (_gate)
        {
            var all = vms()?.List() ?? [];
            // Drop assumptions the cache now shows (or whose VM is gone).
            foreach (var k in _assumed.Keys.ToList())
            {
                var cached = all.FirstOrDefault(v => ObjectKey.Of(v) == k);
                if (cached is null || cached.AssignedHost is not null)
                {
                    _assumed.Remove(k);
                }
            }
            _assumed.Remove(key);
            var placed = all.Where(v => v.AssignedHost is not null && ObjectKey.Of(v) != key)
                .Select(v => new Assumed(v.AssignedHost!, v.CpuReservationMillicores, v.MemoryReservationBytes, v.VcpuMillicores, v.MemoryBytes))
                .Concat(_assumed.Values).ToList();

            var reasons = new List<string>();
            string? best = null;
            var bestScore = double.MaxValue;
            var candidates = hosts.All.OrderBy(h => h.Name, StringComparer.Ordinal).ToList();
            if (candidates.Count == 0)
            {
                return (null, "no Host exists: no vmkerneld has registered with the cluster");
            }
            var gettingReady = new List<string>();
            foreach (var host in candidates)
            {
                var why = Unfit(vm, host, placed.Where(p => p.Host == host.Name).ToList(), out var score);
                if (why is not null)
                {
                    reasons.Add($"{host.Name}: {why}");
                    if (why.EndsWith(" is not mounted", StringComparison.Ordinal) || why.EndsWith(" is not realized", StringComparison.Ordinal))
                    {
                        gettingReady.Add(host.Name);
                    }
                }
                else if (score < bestScore)
                {
                    best = host.Name;
                    bestScore = score;
                }
            }
            if (best is null)
            {
                return (null, string.Join("; ", reasons));
            }
            var age = DateTimeOffset.UtcNow - (vm.Metadata.CreationTimestamp is { } created ? new DateTimeOffset(DateTime.SpecifyKind(created, DateTimeKind.Utc)) : DateTimeOffset.MinValue);
            if (gettingReady.Count > 0 && age < SettleTime)
            {
                settling = true;
                return (null, $"waiting up to {SettleTime.TotalSeconds:F0} s for {string.Join(", ", gettingReady)} to get this VM's datastores and port groups");
            }
            _assumed[key] = new Assumed(best, vm.CpuReservationMillicores, vm.MemoryReservationBytes, vm.VcpuMillicores, vm.MemoryBytes);
            return (best, "");
        }
    }

    /// <summary>
    /// Where a running VM can live-migrate to: the same rules as initial placement over every host but the source
    /// (spec.placement.host says where the VM starts; moving it is what a migration asks, so it does not forbid a target).
    /// </summary>
    public (string? Host, string Why) ChooseMigrationTarget(VmObject vm, string source, string? wanted)
    {
        var key = ObjectKey.Of(vm);
        lock (_gate)
        {
            var all = vms()?.List() ?? [];
            var placed = all.Where(v => v.AssignedHost is not null && ObjectKey.Of(v) != key)
                .Select(v => new Assumed(v.AssignedHost!, v.CpuReservationMillicores, v.MemoryReservationBytes, v.VcpuMillicores, v.MemoryBytes))
                .Concat(_assumed.Where(kv => kv.Key != key).Select(kv => kv.Value)).ToList();
            if (wanted == source)
            {
                return (null, $"it is the host the VM runs on");
            }
            var candidates = hosts.All.Where(h => h.Name != source && (wanted is null || h.Name == wanted)).OrderBy(h => h.Name, StringComparer.Ordinal).ToList();
            if (candidates.Count == 0)
            {
                return (null, wanted is null ? $"no Host other than {source} exists" : $"Host {wanted} does not exist");
            }
            var reasons = new List<string>();
            string? best = null;
            var bestScore = double.MaxValue;
            foreach (var host in candidates)
            {
                var why = Unfit(vm, host, placed.Where(p => p.Host == host.Name).ToList(), out var score, ignorePinnedHost: true);
                if (why is not null)
                {
                    reasons.Add($"{host.Name}: {why}");
                }
                else if (score < bestScore)
                {
                    best = host.Name;
                    bestScore = score;
                }
            }
            return best is null ? (null, string.Join("; ", reasons)) : (best, "");
        }
    }

    /// <summary>Forgets an assumption (the VM was deleted, or its status.host write failed).</summary>
    public void Forget(ObjectKey key)
    {
        lock (_gate)
        {
            _assumed.Remove(key);
        }
    }

    private string? Unfit(VmObject vm, Host host, List<Assumed> onHost, out double score, bool ignorePinnedHost = false)
    {
        score = 0;
        if (!host.IsReady)
        {
            return $"not Ready ({host.Phase ?? "no status"})";
        }
        if (host.Unschedulable)
        {
            return "unschedulable or in maintenance";
        }
        var wanted = CustomObject.Str(vm.Spec, "placement", "host");
        if (!ignorePinnedHost && !string.IsNullOrEmpty(wanted) && wanted != host.Name)
        {
            return $"spec.placement.host is {wanted}";
        }
        if (!LabelSelector.Matches(CustomObject.At(vm.Spec, "placement", "hostSelector"), host.Metadata.Labels))
        {
            return "labels do not match spec.placement.hostSelector";
        }
        foreach (var ds in vm.Datastores)
        {
            if (!datastoreMounted(ds, host.Name))
            {
                return $"datastore {ds} is not mounted";
            }
        }
        foreach (var pg in vm.PortGroups)
        {
            if (!portGroupRealized(pg, host.Name))
            {
                return $"port group {pg} is not realized";
            }
        }
        var cpuUsed = Math.Max(host.AllocatedCpuMillicores, onHost.Sum(p => p.CpuReservation));
        var memUsed = Math.Max(host.AllocatedMemoryBytes, onHost.Sum(p => p.MemoryReservation));
        var cpuFree = host.AllocatableCpuMillicores - cpuUsed;
        var memFree = host.AllocatableMemoryBytes - memUsed;
        if (vm.CpuReservationMillicores > cpuFree)
        {
            return $"CPU reservation {vm.CpuReservationMillicores}m does not fit ({Math.Max(0, cpuFree)}m of {host.AllocatableCpuMillicores}m unreserved)";
        }
        if (vm.MemoryReservationBytes > memFree)
        {
            return $"memory reservation {Mi(vm.MemoryReservationBytes)} does not fit ({Mi(Math.Max(0, memFree))} of {Mi(host.AllocatableMemoryBytes)} unreserved)";
        }
        if (host.AllocatableMemoryBytes > 0 && vm.MemoryBytes > host.AllocatableMemoryBytes)
        {
            return $"memory size {Mi(vm.MemoryBytes)} exceeds the host's allocatable {Mi(host.AllocatableMemoryBytes)}";
        }
        var cpu = (double)onHost.Sum(p => p.Vcpu) / Math.Max(1, host.AllocatableCpuMillicores);
        var mem = (double)onHost.Sum(p => p.MemorySize) / Math.Max(1, host.AllocatableMemoryBytes);
        score = cpu + mem;
        return null;
    }

    private static string Mi(long bytes) => (bytes >> 20).ToString(CultureInfo.InvariantCulture) + "Mi";

    private sealed record Assumed(string Host, long CpuReservation, long MemoryReservation, long Vcpu, long MemorySize);
}
