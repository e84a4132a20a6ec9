namespace Vmk.Operator.Runtime.Reconcile;

public enum ReconcileOutcome
{
    Done,
    RequeueAfter,
    Terminal,
}
