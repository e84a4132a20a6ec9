using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Tests;

/// <summary>A controller running in the background until disposed (which waits for it to stop).</summary>
internal sealed class RunningController : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;

    private RunningController(Controller<TestVm> controller)
    {
        Controller = controller;
        _run = controller.RunAsync(_stop.Token);
    }

    public Controller<TestVm> Controller { get; }

    public static async Task<RunningController> StartAsync(Controller<TestVm> controller)
    {
        var running = new RunningController(controller);
        await Eventually.TrueAsync(() => controller.Informer?.HasSynced == true || running._run.IsCompleted, "the controller's cache to sync");
        if (running._run.IsFaulted)
        {
            await running._run;
        }
        return running;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Eventually.WithinAsync(_run);
        _stop.Dispose();
    }
}
