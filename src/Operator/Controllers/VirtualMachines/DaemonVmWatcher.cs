using Grpc.Core;
using Microsoft.Extensions.Logging;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Reconcile;

namespace Vmk.Operator.Controllers.VirtualMachines;

/// <summary>
/// One VmService.Watch stream per Ready host while this replica leads: every VM event of a daemon requeues the
/// VirtualMachine that owns it (VmSpec.owner), so status follows the guest (started, crashed, got an address)
/// without polling. A broken stream is re-opened with backoff; its initial listing requeues every owner once, so
/// nothing missed while it was down stays missed. Host changes (<see cref="Nudge"/>) start and stop streams.
/// </summary>
public sealed class DaemonVmWatcher(HostDirectory hosts, DaemonConnectionPool daemons, Action<ObjectKey> enqueue, ILogger<DaemonVmWatcher> logger) : IController
{
    private readonly SemaphoreSlim _changed = new(0);
    private int _events;

    public string Name => "daemon-vm-watch";

    /// <summary>VM events received from all daemons (tests and logs).</summary>
    public int EventCount => Volatile.Read(ref _events);

    /// <summary>Hosts changed: re-check which streams should run.</summary>
    public void Nudge()
    {
        if (_changed.CurrentCount == 0)
        {
            _changed.Release();
        }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        var streams = new Dictionary<string, (string Endpoint, CancellationTokenSource Stop, Task Run)>(StringComparer.Ordinal);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var ready = hosts.Ready.ToDictionary(h => h.Name, h => h.Endpoint!, StringComparer.Ordinal);
                foreach (var (name, s) in streams.ToList())
                {
                    if (!ready.TryGetValue(name, out var endpoint) || endpoint != s.Endpoint)
                    {
                        await s.Stop.CancelAsync().ConfigureAwait(false);
                        await s.Run.ConfigureAwait(false);
                        s.Stop.Dispose();
                        streams.Remove(name);
                    }
                }
                foreach (var (name, endpoint) in ready)
                {
                    if (!streams.ContainsKey(name))
                    {
                        var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        streams[name] = (endpoint, stop, Task.Run(() => WatchAsync(name, endpoint, stop.Token), CancellationToken.None));
                    }
                }
                try
                {
                    await _changed.WaitAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            foreach (var (_, s) in streams)
            {
                await s.Stop.CancelAsync().ConfigureAwait(false);
                await s.Run.ConfigureAwait(false);
                s.Stop.Dispose();
            }
        }
    }

    private async Task WatchAsync(string host, string endpoint, CancellationToken ct)
    {
        var failures = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var call = daemons.Vms(host, endpoint).Watch(new WatchVmsRequest(), cancellationToken: ct);
                await foreach (var ev in call.ResponseStream.ReadAllAsync(ct).ConfigureAwait(false))
                {
                    if (ev.Type == VmEventType.Synced)
                    {
                        failures = 0;
                        logger.LogDebug("VM watch of host {Host} synced", host);
                        continue;
                    }
                    Interlocked.Increment(ref _events);
                    var owner = ev.Vm?.Spec?.Owner;
                    if (owner is { Name.Length: > 0, Namespace.Length: > 0 })
                    {
                        enqueue(new ObjectKey(owner.Namespace, owner.Name));
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                failures++;
                if (failures == 1 || failures % 20 == 0)
                {
                    logger.LogWarning("VM watch of host {Host} at {Endpoint} failed ({Failures} in a row): {Error}", host, endpoint, failures, Rpc.Describe(e));
                }
            }
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 7)))), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
