using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Queue;

namespace Vmk.Operator.Runtime.Reconcile;

public sealed class ControllerOptions
{
    /// <summary>Reconciles running at once (distinct keys only: one key is never reconciled twice at once).</summary>
    public int Workers { get; init; } = 2;

    /// <summary>
    /// Every period, every cached key is queued again. Off (null) by default: an idle controller then does no
    /// reconciles at all; reconcilers that poll something outside Kubernetes return RequeueAfter instead.
    /// </summary>
    public TimeSpan? ResyncPeriod { get; init; }

    public InformerOptions Informer { get; init; } = new();

    public ExponentialBackoffRateLimiter RateLimiter { get; init; } = new();
}
