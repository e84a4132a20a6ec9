using System.Threading.Channels;

namespace Vmk.Vmkernel.Vm;

/// <summary>A live feed of a VM's console output; dispose to stop it.</summary>
public sealed class ConsoleSubscription(ChannelReader<ReadOnlyMemory<byte>> output, Action unsubscribe) : IDisposable
{
    private int _disposed;

    public ChannelReader<ReadOnlyMemory<byte>> Output { get; } = output;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            unsubscribe();
        }
    }
}
