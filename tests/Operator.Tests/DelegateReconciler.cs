using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Tests;

/// <summary>A reconciler whose behaviour each test writes inline.</summary>
internal sealed class DelegateReconciler(Func<TestVm, CancellationToken, Task<ReconcileResult>> reconcile, Action<ObjectKey>? deleted = null) : IReconciler<TestVm>
{
    public Task<ReconcileResult> ReconcileAsync(TestVm obj, CancellationToken ct) => reconcile(obj, ct);

    public Task<ReconcileResult> ReconcileDeletedAsync(ObjectKey key, CancellationToken ct)
    {
        deleted?.Invoke(key);
        return Task.FromResult(ReconcileResult.Done);
    }
}
