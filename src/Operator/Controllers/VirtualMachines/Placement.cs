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
            var candidates = hosts.All.ToList();
            if (candidates.Count == 0)
            {
                return (null, "no Host exists: no vmkerneld has registered with the cluster");
            }
            var (best, unfit) = Best(vm, candidates, Placed(all, key), ignorePinnedHost: false);
            if (best is null)
            {
                return (null, Describe(unfit));
            }
            var gettingReady = unfit.Where(u => u.Why.EndsWith(" is not mounted", StringComparison.Ordinal) || u.Why.EndsWith(" is not realized", StringComparison.Ordinal))
                .Select(u => u.Host).ToList();
            var age = DateTimeOffset.UtcNow - (vm.Created ?? DateTimeOffset.MinValue);
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
            if (wanted == source)
            {
                return (null, $"it is the host the VM runs on");
            }
            var candidates = hosts.All.Where(h => h.Name != source && (wanted is null || h.Name == wanted)).ToList();
            if (candidates.Count == 0)
            {
                return (null, wanted is null ? $"no Host other than {source} exists" : $"Host {wanted} does not exist");
            }
            var (best, unfit) = Best(vm, candidates, Placed(vms()?.List() ?? [], key), ignorePinnedHost: true);
            return best is null ? (null, Describe(unfit)) : (best, "");
        }
    }

    /// <summary>What every other VM takes on each host: the cache's placements and the assumptions not yet in it.</summary>
    private List<Assumed> Placed(IEnumerable<VmObject> all, ObjectKey except) =>
        all.Where(v => v.AssignedHost is not null && ObjectKey.Of(v) != except)
            .Select(v => new Assumed(v.AssignedHost!, v.CpuReservationMillicores, v.MemoryReservationBytes, v.VcpuMillicores, v.MemoryBytes))
            .Concat(_assumed.Where(kv => kv.Key != except).Select(kv => kv.Value)).ToList();

    private static string Describe(List<(string Host, string Why)> unfit) => string.Join("; ", unfit.Select(u => $"{u.Host}: {u.Why}"));

    /// <summary>The best-scoring fit host (ties go to the first name), and why each other host does not fit.</summary>
    private (string? Best, List<(string Host, string Why)> Unfit) Best(VmObject vm, IEnumerable<Host> candidates, List<Assumed> placed, bool ignorePinnedHost)
    {
        var unfit = new List<(string Host, string Why)>();
        string? best = null;
        var bestScore = double.MaxValue;
        foreach (var host in candidates.OrderBy(h => h.Name, StringComparer.Ordinal))
        {
            var why = Unfit(vm, host, placed.Where(p => p.Host == host.Name).ToList(), out var score, ignorePinnedHost);
            if (why is not null)
            {
                unfit.Add((host.Name, why));
            }
            else if (score < bestScore)
            {
                best = host.Name;
                bestScore = score;
            }
        }
        return (best, unfit);
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
