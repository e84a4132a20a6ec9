using k8s;
using k8s.Models;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// The finalizers one controller owns, each with its cleanup, looked up by name. While the object lives, every
/// registered finalizer is ensured on it. Once it is being deleted, one finalizer is handled per pass: the first
/// registered one still present has its cleanup run and is then removed; that update brings the next pass. A
/// cleanup that throws leaves its finalizer in place, so the object stays until the cleanup succeeds.
/// </summary>
public sealed class FinalizerSet<T>(IResourceApi<T> api)
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    private readonly List<(string Name, Func<T, CancellationToken, Task> Finalize)> _finalizers = [];

    public IReadOnlyList<string> Names => [.. _finalizers.Select(f => f.Name)];

    public FinalizerSet<T> Register(string name, Func<T, CancellationToken, Task> finalize)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(finalize);
        if (_finalizers.Any(f => f.Name == name))
        {
            throw new ArgumentException($"finalizer '{name}' is registered twice", nameof(name));
        }
        _finalizers.Add((name, finalize));
        return this;
    }

    public async Task<FinalizerStep<T>> ApplyAsync(T obj, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(obj);
        if (Finalizers.IsBeingDeleted(obj))
        {
            foreach (var (name, finalize) in _finalizers)
            {
                if (Finalizers.Has(obj, name))
                {
                    await finalize(obj, ct).ConfigureAwait(false);
                    var after = await Finalizers.RemoveAsync(api, obj, name, ct).ConfigureAwait(false);
                    return new FinalizerStep<T>(after, ReconcileResult.Done);
                }
            }
            // None of ours left: the object goes once other owners' finalizers are gone.
            return new FinalizerStep<T>(obj, ReconcileResult.Done);
        }
        foreach (var (name, _) in _finalizers)
        {
            obj = await Finalizers.AddAsync(api, obj, name, ct).ConfigureAwait(false);
        }
        return new FinalizerStep<T>(obj, null);
    }
}
