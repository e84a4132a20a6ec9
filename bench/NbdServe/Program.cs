using System.Net;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Nbd;
using Vmk.Vmkernel.Storage;
using Vmk.Vmkernel.Vmfs;

// Benchmark host for bench/nbd.sh: serves one raw file or one VMFS virtual disk with the VMkernel's NBD server
// until SIGTERM/SIGINT, printing "ready" once listening; or prepares a VMFS datastore holding a copy of an image.
const string Usage = """
    usage: nbd-serve --socket PATH (--file IMAGE | --vmfs DATASTORE --disk NAME) [--name EXPORT] [--read-only]
                     [--inline BYTES] [--batch REPLIES] [--tcp ADDR:PORT]
           nbd-serve --create-vmfs DATASTORE --disk NAME --import IMAGE
    """;
var options = ParseArguments(args);
if (options is null)
{
    Console.Error.WriteLine(Usage);
    return 2;
}

using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
const string HostName = "nbd-bench";

if (options.TryGetValue("--create-vmfs", out var newDatastore))
{
    ImportIntoVmfs(newDatastore, options["--disk"], options["--import"], loggerFactory.CreateLogger("vmfs"));
    return 0;
}

var serverOptions = new NbdServerOptions();
if (options.TryGetValue("--inline", out var inline))
{
    serverOptions = serverOptions with { InlineMaxLength = int.Parse(inline, System.Globalization.CultureInfo.InvariantCulture) };
}

if (options.TryGetValue("--batch", out var batch))
{
    serverOptions = serverOptions with { MaxRepliesPerBatch = int.Parse(batch, System.Globalization.CultureInfo.InvariantCulture) };
}

bool readOnly = options.ContainsKey("--read-only");
VmfsDatastore? datastore = null;
IBlockDevice device;
if (options.TryGetValue("--vmfs", out var datastorePath))
{
    datastore = VmfsDatastore.Open(datastorePath, HostName, logger: loggerFactory.CreateLogger("vmfs"));
    device = datastore.OpenDisk(options["--disk"], readOnly ? LeaseMode.SharedRead : LeaseMode.Exclusive);
}
else
{
    device = FileBlockDevice.Open(options["--file"], readOnly);
}

await using (var server = new NbdServer(serverOptions, loggerFactory))
{
    server.AddExport(options.GetValueOrDefault("--name", ""), device, readOnly);
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

    Console.Error.WriteLine($"gc: allocated {GC.GetTotalAllocatedBytes() / 1024} KiB, collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}");
    foreach (var s in server.GetStatistics())
    {
        Console.Error.WriteLine($"{s.Name}: read {s.Read.Operations} ops avg {s.Read.AverageLatency.TotalMicroseconds:F0} us, write {s.Write.Operations} ops avg {s.Write.AverageLatency.TotalMicroseconds:F0} us");
    }
}

device.Dispose();
datastore?.Dispose();
return 0;

static void ImportIntoVmfs(string datastorePath, string diskName, string imagePath, ILogger logger)
{
    long size = new FileInfo(imagePath).Length;
    VmfsDatastore.Format(datastorePath, new FormatOptions { SizeBytes = size + (256L << 20), Label = "nbd-bench" }, logger);
    using var ds = VmfsDatastore.Open(datastorePath, HostName, logger: logger);
    ds.CreateDisk(diskName, size, thin: true);
    using var disk = ds.OpenDisk(diskName);
    using var image = File.OpenHandle(imagePath);
    var chunk = new byte[1 << 20];
    for (long offset = 0; offset < size; offset += chunk.Length)
    {
        int length = (int)Math.Min(chunk.Length, size - offset);
        RandomAccess.Read(image, chunk.AsSpan(0, length), offset);
        if (chunk.AsSpan(0, length).ContainsAnyExcept((byte)0))
        {
            disk.Write(offset, chunk.AsSpan(0, length), forceUnitAccess: false);
        }
    }

    disk.Flush();
}

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

    bool serve = result.ContainsKey("--socket") && (result.ContainsKey("--file") || (result.ContainsKey("--vmfs") && result.ContainsKey("--disk")));
    bool create = result.ContainsKey("--create-vmfs") && result.ContainsKey("--disk") && result.ContainsKey("--import");
    return serve || create ? result : null;
}
