using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// metadata.generation moves only when spec changes; status writes (ours included) do not move it. Comparing it
/// with status.observedGeneration tells a reconciler whether the spec it last acted on is current, and comparing
/// two cached states tells the controller whether an update event needs a reconcile at all.
/// </summary>
public static class Generations
{
    /// <summary>True when status reports the object's current generation as handled.</summary>
    public static bool IsObserved(IKubernetesObject<V1ObjectMeta> obj, long? observedGeneration)
    {
        ArgumentNullException.ThrowIfNull(obj);
        return observedGeneration is { } observed && observed >= (obj.Metadata.Generation ?? 0);
    }

    /// <summary>
    /// The default update filter: reconcile when the spec changed (generation) or when metadata a reconciler acts on
    /// changed (deletion, finalizers, labels, annotations). A status-only update (our own status write) is skipped,
    /// which is what keeps an idle controller at zero reconciles.
    /// </summary>
    public static bool SpecOrMetadataChanged<T>(T previous, T current)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(current);
        var a = previous.Metadata;
        var b = current.Metadata;
        return a.Generation != b.Generation
            || a.DeletionTimestamp != b.DeletionTimestamp
            || a.Uid != b.Uid
            || !SameList(a.Finalizers, b.Finalizers)
            || !SameMap(a.Labels, b.Labels)
            || !SameMap(a.Annotations, b.Annotations);
    }

    private static bool SameList(IList<string>? a, IList<string>? b)
        => (a is null || a.Count == 0) ? (b is null || b.Count == 0) : b is not null && a.SequenceEqual(b);

    private static bool SameMap(IDictionary<string, string>? a, IDictionary<string, string>? b)
    {
        if (a is null || a.Count == 0)
        {
            return b is null || b.Count == 0;
        }
        return b is not null && a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);
    }
}
