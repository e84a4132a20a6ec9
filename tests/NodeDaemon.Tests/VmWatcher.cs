using System.Threading.Channels;
using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>A Watch call read in the background; tests wait for the events they expect, in order.</summary>
public sealed class VmWatcher : IDisposable
{
    private readonly AsyncServerStreamingCall<VmEvent> _call;
    private readonly Channel<VmEvent> _events = Channel.CreateUnbounded<VmEvent>();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;

    public VmWatcher(DaemonClient client, string name = "")
    {
        _call = client.Vms.Watch(new WatchVmsRequest { Name = name }, cancellationToken: _stop.Token);
        _reader = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in _call.ResponseStream.ReadAllAsync(_stop.Token))
                {
                    Seen.Add(e);
                    await _events.Writer.WriteAsync(e);
                }
                _events.Writer.TryComplete();
            }
            catch (Exception e)
            {
                _events.Writer.TryComplete(e);
            }
        });
    }

    public List<VmEvent> Seen { get; } = [];

    public Task Completion => _reader;

    /// <summary>Skips events until one matches; throws when the deadline passes or the stream ends first.</summary>
    public async Task<VmEvent> WaitForAsync(Func<VmEvent, bool> match, TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        while (true)
        {
            VmEvent e;
            try
            {
                e = await _events.Reader.ReadAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no matching watch event within {deadline.TotalSeconds} s; seen: {string.Join(", ", Seen.Select(Describe))}");
            }
            if (match(e))
            {
                return e;
            }
        }
    }

    public static string Describe(VmEvent e) => e.Vm is null ? e.Type.ToString() : $"{e.Type} {e.Vm.Spec.Name} {e.Vm.Status.State}";

    public void Dispose()
    {
        _stop.Cancel();
        _call.Dispose();
        _stop.Dispose();
    }
}
