using System.Net;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Nbd;
using Vmk.Vmkernel.Storage;

// nbd-serve --socket PATH --file IMAGE [--name EXPORT] [--read-only] [--inline BYTES] [--batch REPLIES] [--tcp ADDR:PORT]
// Serves one raw file as one export until stdin closes or SIGTERM/SIGINT; prints "ready" once listening.
var options = ParseArguments(args);
if (options is null)
{
    Console.Error.WriteLine("usage: nbd-serve --socket PATH --file IMAGE [--name EXPORT] [--read-only] [--inline BYTES] [--batch REPLIES] [--tcp ADDR:PORT]");
    return 2;
}

using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
var serverOptions = new NbdServerOptions();
if (options.TryGetValue("--inline", out var inline))
{
    serverOptions = serverOptions with { InlineMaxLength = int.Parse(inline, System.Globalization.CultureInfo.InvariantCulture) };
}

if (options.TryGetValue("--batch", out var batch))
{
    serverOptions = serverOptions with { MaxRepliesPerBatch = int.Parse(batch, System.Globalization.CultureInfo.InvariantCulture) };
}

using var device = FileBlockDevice.Open(options["--file"], options.ContainsKey("--read-only"));
await using var server = new NbdServer(serverOptions, loggerFactory);
server.AddExport(options.GetValueOrDefault("--name", ""), device, options.ContainsKey("--read-only"));
await using var unix = server.ListenUnix(options["--socket"]);
NbdListener? tcp = options.TryGetValue("--tcp", out var tcpEndpoint) ? server.ListenTcp(IPEndPoint.Parse(tcpEndpoint)) : null;

var stop = new TaskCompletionSource();
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
Console.WriteLine("ready");
await stop.Task;
if (tcp is not null)
{
    await tcp.DisposeAsync();
}

Console.Error.WriteLine($"gc: allocated {GC.GetTotalAllocatedBytes() / 1024} KiB, collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, threads {System.Diagnostics.Process.GetCurrentProcess().Threads.Count}");
foreach (var s in server.GetStatistics())
{
    Console.Error.WriteLine($"{s.Name}: read {s.Read.Operations} ops avg {s.Read.AverageLatency.TotalMicroseconds:F0}us, write {s.Write.Operations} ops avg {s.Write.AverageLatency.TotalMicroseconds:F0}us");
}

return 0;

static Dictionary<string, string>? ParseArguments(string[] args)
{
    var result = new Dictionary<string, string>(StringComparer.Ordinal);
    for (int i = 0; i < args.Length; i++)
    {
        if (args[i] == "--read-only")
        {
            result[args[i]] = "";
        }
        else if (args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length)
        {
            result[args[i]] = args[++i];
        }
        else
        {
            return null;
        }
    }

    return result.ContainsKey("--socket") && result.ContainsKey("--file") ? result : null;
}
