using k8s;
using k8s.Models;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// Level-based reconciliation of one resource type. The controller calls it with the object's latest state from
/// the informer cache at the moment a worker takes its key, never with an event's payload; a burst of changes is
/// one call. It must be idempotent: it may run again for the same state (restart, relist, resync).
/// Throwing means "failed": the key is retried with per-key exponential backoff.
/// </summary>
public interface IReconciler<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    Task<ReconcileResult> ReconcileAsync(T obj, CancellationToken ct);

    /// <summary>
    /// The key's object is no longer in the cache (deleted and, with finalizers, already finalized). Most
    /// reconcilers use finalizers for cleanup and have nothing to do here.
    /// </summary>
    Task<ReconcileResult> ReconcileDeletedAsync(ObjectKey key, CancellationToken ct) => Task.FromResult(ReconcileResult.Done);
}
