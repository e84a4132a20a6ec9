namespace Vmk.E2E.Tests;

/// <summary>One standalone run shared by a test class (each test uses VM names of its own).</summary>
public abstract class StandaloneFixture(int hosts) : IAsyncLifetime
{
    private StandaloneRun? _run;

    public StandaloneRun Run => _run ?? throw new InvalidOperationException("the standalone run did not start");

    public async Task InitializeAsync() => _run = await StandaloneRun.StartAsync(hosts);

    public async Task DisposeAsync()
    {
        if (_run is not null)
        {
            await _run.DisposeAsync();
        }
    }
}
