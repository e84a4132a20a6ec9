using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Informer;

/// <summary>
/// What a controller works on: namespace/name (name alone for cluster-scoped objects), never the object itself,
/// so a reconcile always reads the latest state from the cache (level-based).
/// </summary>
public readonly record struct ObjectKey(string? Namespace, string Name)
{
    public static ObjectKey Of(IKubernetesObject<V1ObjectMeta> obj)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var meta = obj.Metadata ?? throw new ArgumentException("object has no metadata", nameof(obj));
        if (string.IsNullOrEmpty(meta.Name))
        {
            throw new ArgumentException("object has no metadata.name", nameof(obj));
        }
        return new ObjectKey(string.IsNullOrEmpty(meta.NamespaceProperty) ? null : meta.NamespaceProperty, meta.Name);
    }

    /// <summary>Parses "namespace/name" or "name" (cluster-scoped), the form <see cref="ToString"/> writes.</summary>
    public static ObjectKey Parse(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? new ObjectKey(null, key) : new ObjectKey(key[..slash], key[(slash + 1)..]);
    }

    public override string ToString() => Namespace is null ? Name : Namespace + "/" + Name;
}
