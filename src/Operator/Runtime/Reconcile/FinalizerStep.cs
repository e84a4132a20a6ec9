using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// What <see cref="FinalizerSet{T}.ApplyAsync"/> did: when <see cref="Result"/> is set the pass is over (a finalizer
/// ran, or the object waits for others' finalizers) and the reconciler returns it; otherwise it carries on with
/// <see cref="Object"/> (which now holds every registered finalizer).
/// </summary>
public readonly record struct FinalizerStep<T>(T Object, ReconcileResult? Result)
    where T : class, IKubernetesObject<V1ObjectMeta>;
