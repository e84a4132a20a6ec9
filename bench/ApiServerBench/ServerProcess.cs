using Microsoft.Extensions.Logging.Abstractions;
using Vmk.ApiServer;

namespace Vmk.ApiServerBench;

/// <summary>The server under test, alone in its process so its memory can be measured.</summary>
internal static class ServerProcess
{
    public static async Task<int> RunAsync(string dataDir, bool durable)
    {
        var crds = CrdLocator.Find() ?? throw new InvalidOperationException("crds/ not found");
        await using var host = await ApiServerHost.StartAsync(new ApiServerOptions
        {
            DataDirectory = dataDir,
            Port = 0,
            CrdDirectory = crds,
            DurableCommits = durable,
        }, NullLoggerFactory.Instance);
        Console.WriteLine("READY " + host.KubeconfigPath);
        // The driver closes stdin to stop the server.
        await Console.In.ReadToEndAsync();
        var (batches, writes) = host.Store.CommitStatistics;
        Console.WriteLine($"STATS commits={batches} writes={writes}");
        return 0;
    }
}
