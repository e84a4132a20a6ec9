using Microsoft.Extensions.Hosting;

namespace Vmk.ApiServer;

/// <summary>
/// The server is embedded (vmctl, tests, bench): the embedding program owns Ctrl-C and SIGTERM. ASP.NET's default
/// console lifetime would take those signals and stop Kestrel behind the program's back.
/// </summary>
internal sealed class EmbeddedHostLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
