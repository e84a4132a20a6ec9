using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Controllers.Migrations;

/// <summary>
/// The migration limits KubeVirt has by default: at most <see cref="VirtualMachineMigrationReconciler.PerHostLimit"/>
/// outgoing migrations per source host and <see cref="VirtualMachineMigrationReconciler.ClusterLimit"/> in the
/// cluster; the rest wait in creation order. A queued migration whose own host is full lets younger ones from
/// other hosts pass; one that only the cluster limit holds back keeps its place ahead of every younger one.
/// A pure function of the objects, so the limits can be checked without starting a guest.
/// </summary>
internal static class MigrationAdmission
{
    /// <summary>
    /// Why the queued migration <paramref name="me"/> may not start yet, or null when it may.
    /// </summary>
    /// <param name="all">Every VirtualMachineMigration the operator knows.</param>
    /// <param name="admitted">Migrations this process admitted and drives, with their source host.</param>
    /// <param name="sourceOf">The host a queued migration's VM runs on (null: it fails on its own pass, taking no slot).</param>
    /// <param name="me">The queued migration asking.</param>
    public static string? Blocked(IReadOnlyCollection<VirtualMachineMigration> all, IEnumerable<(ObjectKey Key, string Source)> admitted,
        Func<VirtualMachineMigration, string?> sourceOf, ObjectKey me)
    {
        var perHost = new Dictionary<string, int>(StringComparer.Ordinal);
        var active = new HashSet<ObjectKey>();
        foreach (var (key, source) in admitted)
        {
            active.Add(key);
            perHost[source] = perHost.GetValueOrDefault(source) + 1;
        }
        // Active ones this process does not drive (a previous operator's, being settled) still hold their slots.
        foreach (var other in all.Where(o => o.IsActive && !active.Contains(ObjectKey.Of(o))))
        {
            active.Add(ObjectKey.Of(other));
            if (CustomObject.Str(other.Status, "sourceHost") is { } s)
            {
                perHost[s] = perHost.GetValueOrDefault(s) + 1;
            }
        }
        var total = active.Count;
        var queued = all.Where(o => o.IsQueued && !Finalizers.IsBeingDeleted(o))
            .OrderBy(o => o.Metadata.CreationTimestamp ?? DateTime.MaxValue).ThenBy(o => o.Namespace, StringComparer.Ordinal).ThenBy(o => o.Name, StringComparer.Ordinal);
        foreach (var q in queued)
        {
            var isMe = ObjectKey.Of(q) == me;
            var host = sourceOf(q);
            if (host is null)
            {
                if (isMe)
                {
                    break;
                }
                continue;
            }
            if (total >= VirtualMachineMigrationReconciler.ClusterLimit)
            {
                return ClusterFull(total);
            }
            if (perHost.GetValueOrDefault(host) >= VirtualMachineMigrationReconciler.PerHostLimit)
            {
                if (isMe)
                {
                    return $"queued: {perHost[host]} outgoing migrations run from host {host} (limit {VirtualMachineMigrationReconciler.PerHostLimit})";
                }
                continue;
            }
            if (isMe)
            {
                return null;
            }
            // An older one that may start takes its slot first.
            total++;
            perHost[host] = perHost.GetValueOrDefault(host) + 1;
        }
        return total >= VirtualMachineMigrationReconciler.ClusterLimit ? ClusterFull(total) : null;
    }

    private static string ClusterFull(int total) => $"queued: {total} migrations run in the cluster (limit {VirtualMachineMigrationReconciler.ClusterLimit})";
}
