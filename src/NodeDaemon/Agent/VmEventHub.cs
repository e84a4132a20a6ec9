using System.Threading.Channels;
using Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// Fans VM changes out to watch streams. Each VM object is followed once (its StatusChanged event); defines and
/// deletes are published by the handlers that perform them. A watcher that falls too far behind is cut off
/// (its channel completes with an error) rather than slowing the VMs down: it re-watches and gets a fresh listing.
/// </summary>
public sealed class VmEventHub
{
    public const int WatcherCapacity = 1024;

    private readonly Lock _gate = new();
    private readonly HashSet<VirtualMachine> _followed = new(ReferenceEqualityComparer.Instance);
    private readonly List<Channel<VmChange>> _watchers = [];

    /// <summary>Follows a VM's state changes (once per VM object).</summary>
    public void Attach(VirtualMachine vm)
    {
        lock (_gate)
        {
            if (!_followed.Add(vm))
            {
                return;
            }
        }
        vm.StatusChanged += OnStatusChanged;
    }

    public void Detach(VirtualMachine vm)
    {
        vm.StatusChanged -= OnStatusChanged;
        lock (_gate)
        {
            _followed.Remove(vm);
        }
    }

    public void Publish(VmChangeKind kind, VirtualMachine vm, VmStatus status)
    {
        var change = new VmChange(kind, vm, status);
        lock (_gate)
        {
            for (var i = _watchers.Count - 1; i >= 0; i--)
            {
                if (!_watchers[i].Writer.TryWrite(change))
                {
                    _watchers[i].Writer.TryComplete(new WatcherTooSlowException());
                    _watchers.RemoveAt(i);
                }
            }
        }
    }

    /// <summary>
    /// Registers a watcher and returns it with the VMs as they are at that moment: every change after the snapshot
    /// reaches the channel, so listing then following misses nothing.
    /// </summary>
    public (ChannelReader<VmChange> Changes, IDisposable Registration) Watch(Func<IReadOnlyCollection<VirtualMachine>> snapshot, out IReadOnlyList<(VirtualMachine Vm, VmStatus Status)> current)
    {
        var channel = Channel.CreateBounded<VmChange>(new BoundedChannelOptions(WatcherCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        lock (_gate)
        {
            current = snapshot().Select(vm => (vm, vm.Status)).ToList();
            _watchers.Add(channel);
        }
        return (channel.Reader, new Registration(this, channel));
    }

    private void OnStatusChanged(object? sender, VmStatus status)
    {
        if (sender is VirtualMachine vm)
        {
            Publish(VmChangeKind.Changed, vm, status);
        }
    }

    private void Remove(Channel<VmChange> channel)
    {
        lock (_gate)
        {
            _watchers.Remove(channel);
        }
        channel.Writer.TryComplete();
    }

    private sealed class Registration(VmEventHub hub, Channel<VmChange> channel) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                hub.Remove(channel);
            }
        }
    }
}
