namespace Vmk.NodeDaemon.Tests;

/// <summary>One host with one running vmkerneld shared by the tests of a class (each test uses its own VM names).</summary>
public sealed class DaemonFixture : IAsyncLifetime
{
    public TestHost Host { get; } = new();

    public DaemonProcess Daemon { get; private set; } = null!;

    public DaemonClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Daemon = await Host.StartDaemonAsync();
        Client = Host.Connect(Daemon);
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        await Host.DisposeAsync();
    }
}
