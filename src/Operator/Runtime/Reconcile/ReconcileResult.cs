namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>
/// What a reconcile pass asks of the controller (controller-runtime's <c>reconcile.Result</c>, KubeOps'
/// <c>ReconciliationResult</c>): nothing more (<see cref="Done"/>), another pass after a delay
/// (<see cref="RequeueAfter"/>), or no retry because retrying cannot help (<see cref="Terminal"/>: only a change to
/// the object brings it back). A thrown exception means "failed, retry with backoff".
/// </summary>
public sealed record ReconcileResult
{
    private ReconcileResult(ReconcileOutcome outcome, TimeSpan delay, string? reason)
    {
        Outcome = outcome;
        Delay = delay;
        Reason = reason;
    }

    public static ReconcileResult Done { get; } = new(ReconcileOutcome.Done, TimeSpan.Zero, null);

    public ReconcileOutcome Outcome { get; }

    /// <summary>For <see cref="ReconcileOutcome.RequeueAfter"/>: how long until the next pass.</summary>
    public TimeSpan Delay { get; }

    /// <summary>For <see cref="ReconcileOutcome.Terminal"/>: why retrying cannot help, for a person to act on.</summary>
    public string? Reason { get; }

    public static ReconcileResult RequeueAfter(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        return new(ReconcileOutcome.RequeueAfter, delay, null);
    }

    public static ReconcileResult Terminal(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        return new(ReconcileOutcome.Terminal, TimeSpan.Zero, reason);
    }

    public override string ToString() => Outcome switch
    {
        ReconcileOutcome.RequeueAfter => $"RequeueAfter({Delay})",
        ReconcileOutcome.Terminal => $"Terminal({Reason})",
        _ => "Done",
    };
}
