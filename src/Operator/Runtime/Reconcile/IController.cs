namespace Vmk.Operator.Runtime.Reconcile;

/// <summary>Something the controller host runs while it leads: fresh caches and queues each run.</summary>
public interface IController
{
    string Name { get; }

    /// <summary>Runs until <paramref name="ct"/> is cancelled; returns once no reconcile is in flight.</summary>
    Task RunAsync(CancellationToken ct);
}
