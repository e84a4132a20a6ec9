namespace Vmk.NodeDaemon.Agent;

/// <summary>A watch stream's reader fell more than <see cref="VmEventHub.WatcherCapacity"/> changes behind.</summary>
public sealed class WatcherTooSlowException : Exception
{
    public WatcherTooSlowException()
        : base($"the watch fell more than {VmEventHub.WatcherCapacity} changes behind and was cut off; watch again to get a fresh listing")
    {
    }

    public WatcherTooSlowException(string message) : base(message) { }

    public WatcherTooSlowException(string message, Exception inner) : base(message, inner) { }
}
