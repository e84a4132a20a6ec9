using System.Threading.Channels;

namespace Vmk.ApiServer.Storage;

/// <summary>
/// One watcher's queue. Bounded: a watcher that falls this far behind is closed, and its client re-watches from the
/// last resourceVersion it saw (kube-apiserver terminates slow watchers the same way).
/// </summary>
public sealed class WatchSubscription : IDisposable
{
    private readonly Action<WatchSubscription> _unsubscribe;
    private int _disposed;

    internal WatchSubscription(string resource, string? ns, int capacity, Action<WatchSubscription> unsubscribe)
    {
        Resource = resource;
        Namespace = ns;
        _unsubscribe = unsubscribe;
        Channel = System.Threading.Channels.Channel.CreateBounded<WatchEvent>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public string Resource { get; }

    /// <summary>Namespace filter, null for all namespaces.</summary>
    public string? Namespace { get; }

    public Channel<WatchEvent> Channel { get; }

    /// <summary>Set when the queue overflowed; the stream must end so the client re-watches.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>Changes up to this version are already in the initial state the watcher was sent.</summary>
    internal long SkipThrough { get; set; }

    internal void Offer(WatchEvent e)
    {
        if (e.ResourceVersion <= SkipThrough)
        {
            return;
        }
        if (Namespace is not null && e.Object is not null && e.Object.Namespace != Namespace)
        {
            return;
        }
        if (!Channel.Writer.TryWrite(e) && !Overflowed)
        {
            Overflowed = true;
            Channel.Writer.TryComplete();
        }
    }

    internal void OfferBookmark(long rv) => Channel.Writer.TryWrite(new WatchEvent(WatchEvent.Bookmark, null, null, rv));

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Channel.Writer.TryComplete();
            _unsubscribe(this);
        }
    }
}
