using System.Collections.Concurrent;
using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Informer;

/// <summary>
/// The informer's indexer: the latest state of every object it has seen, by <see cref="ObjectKey"/>. Readers get
/// the same instances the informer stored; treat them as read-only (copy before changing).
/// </summary>
public sealed class ObjectCache<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    private readonly ConcurrentDictionary<ObjectKey, T> _objects = new();

    public int Count => _objects.Count;

    public T? Get(ObjectKey key) => _objects.TryGetValue(key, out var o) ? o : null;

    public T? Get(string? @namespace, string name) => Get(new ObjectKey(string.IsNullOrEmpty(@namespace) ? null : @namespace, name));

    public IReadOnlyList<T> List() => [.. _objects.Values];

    public IReadOnlyList<T> List(string @namespace) => [.. _objects.Where(kv => kv.Key.Namespace == @namespace).Select(kv => kv.Value)];

    public IReadOnlyList<ObjectKey> Keys() => [.. _objects.Keys];

    /// <summary>Stores <paramref name="obj"/>; returns what it replaced, if anything.</summary>
    internal T? Set(ObjectKey key, T obj)
    {
        T? previous = null;
        _objects.AddOrUpdate(key, obj, (_, old) =>
        {
            previous = old;
            return obj;
        });
        return previous;
    }

    internal T? Remove(ObjectKey key) => _objects.TryRemove(key, out var old) ? old : null;
}
