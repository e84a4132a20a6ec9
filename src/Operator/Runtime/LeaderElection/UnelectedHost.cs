using Microsoft.Extensions.Logging;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Runtime.LeaderElection;

/// <summary>
/// Runs the controllers without a Lease (--leader-elect=false: one replica, development, the standalone mode). A
/// controller that crashes is restarted after a pause, as <see cref="ControllerHost"/> does while leading.
/// </summary>
public static class UnelectedHost
{
    public static Task RunAsync(IEnumerable<IController> controllers, ILogger logger, CancellationToken ct) =>
        Task.WhenAll(controllers.Select(c => Task.Run(async () =>
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    await c.RunAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    logger.LogError(e, "Controller {Controller} stopped with an error; restarting it", c.Name);
                }
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(2), ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }, CancellationToken.None)));
}
