// Migration soak: does a live migration under this machine's QEMU deliver the guest's memory exactly?
//   migrate-soak --guest-dir DIR [--rounds 100] [--whole-mib]
// The test guest (256 MiB, the VMkernel's argv from QemuCommandLine, TCG) migrates back and forth between two local
// QEMU processes over QMP, --rounds times. After each migration both QEMUs are paused (the source in postmigrate,
// the target started -S), so their memories must be equal: both are saved (QMP pmemsave) and compared page by page.
// Then the target resumes and must print two more ticks within 30 s, and the source quits.
// --whole-mib gives the guest its memory as a whole number of MiB instead of the VMkernel's TCG size
// (MemoryArgs.TcgPadBytes): QEMU before 9.0 then loses writes made during the migration (docs/migration.md).
// Prints "name: value" lines on stdout (rounds, memory_differences, guests_stopped); progress on stderr.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Qmp;
using Vk = Vmk.Vmkernel.Vm;

string? guestDir = null;
var rounds = 100;
var wholeMib = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--guest-dir": guestDir = args[++i]; break;
        case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--whole-mib": wholeMib = true; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (guestDir is null || rounds < 1)
{
    Console.Error.WriteLine("usage: migrate-soak --guest-dir DIR [--rounds N] [--whole-mib]");
    return 2;
}

const long MemoryBytes = 256L << 20;
const int PageSize = 4096;
var work = Directory.CreateTempSubdirectory("vmk-migrate-soak-").FullName;
var disk = Path.Combine(work, "root.img");
await using (var f = File.Create(disk))
{
    f.SetLength(64L << 20);
}
var spec = new Vk.VmSpec
{
    Name = "soak",
    MemoryBytes = MemoryBytes,
    Boot = new Vk.BootSpec { Kernel = Path.Combine(guestDir, "vmlinux"), Initrd = Path.Combine(guestDir, "initrd.gz"), Cmdline = "console=ttyS0 tsc=reliable quiet" },
    Disks = [new Vk.DiskSpec { Name = "root", File = disk }],
    StartPaused = true,
};
// As vmkerneld runs TCG guests: with the host's TSC rate on their command line (docs/vmkernel.md), or a busy host stalls their boot.
var settings = new QemuHostSettings(Vmk.Vmkernel.Qemu.Accel.Accelerator.Tcg, RunAsUser: null, Sandbox: true, Vmk.Vmkernel.HostEnvironment.TscKhz());
var processes = new List<Process>();
var index = 0;
var memoryArg = "";
int differences = 0, stopped = 0;
try
{
    var source = await BootAsync();
    for (var round = 1; round <= rounds; round++)
    {
        var clock = Stopwatch.StartNew();
        var target = await StartAsync(incoming: true);
        var port = FreePort();
        await SetCapabilitiesAsync(target.Qmp);
        await SetCapabilitiesAsync(source.Qmp);
        await target.Qmp.ExecuteAsync("migrate-incoming", new { uri = $"tcp:127.0.0.1:{port}" });
        var sourceDone = CompletedAsync(source.Qmp);
        var targetDone = CompletedAsync(target.Qmp);
        await source.Qmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object?> { ["downtime-limit"] = 30 });
        await source.Qmp.ExecuteAsync("migrate", new { uri = $"tcp:127.0.0.1:{port}" });
        await Task.WhenAll(sourceDone, targetDone);
        var migrated = clock.ElapsedMilliseconds;

        var stale = await CompareMemoryAsync(source.Qmp, target.Qmp);
        await target.Qmp.ExecuteAsync("cont");
        await QuitAsync(source);
        var ticking = await WaitTickAsync(target.ConsoleLog, LastTick(target.ConsoleLog) + 2, TimeSpan.FromSeconds(30));
        differences += stale.Count > 0 ? 1 : 0;
        Console.Error.WriteLine($"round {round}: migrated in {migrated} ms; memory {(stale.Count == 0 ? "equal" : $"DIFFERS in {stale.Count} pages ({string.Join(", ", stale.Take(8).Select(p => $"0x{p:x}"))})")}; guest {(ticking ? "ticks on" : "STOPPED")}");
        if (!ticking)
        {
            stopped++;
            Console.Error.WriteLine(string.Join('\n', File.ReadLines(target.ConsoleLog).TakeLast(40)));
            await QuitAsync(target);
            target = await BootAsync();
        }
        source = target;
    }
    Console.WriteLine($"rounds: {rounds}");
    Console.WriteLine($"memory: {(wholeMib ? "whole MiB" : "the VMkernel's TCG size")} (-m {memoryArg})");
    Console.WriteLine($"memory_differences: {differences}");
    Console.WriteLine($"guests_stopped: {stopped}");
    return differences == 0 && stopped == 0 ? 0 : 1;
}
finally
{
    foreach (var p in processes)
    {
        if (!p.HasExited)
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
        p.Dispose();
    }
    Directory.Delete(work, recursive: true);
}

List<string> Argv(bool incoming, Vk.VmPaths paths)
{
    var argv = QemuCommandLine.Build(spec, paths, settings).ToList();
    for (var i = 0; i < argv.Count; i++)
    {
        if (argv[i].StartsWith("socket,id=console,", StringComparison.Ordinal))
        {
            argv[i] += $",logfile={Path.Combine(paths.Directory, "console.log")}";
        }
        if (argv[i] == "-m")
        {
            if (wholeMib)
            {
                argv[i + 1] = $"{MemoryBytes >> 20}M";
            }
            memoryArg = argv[i + 1];
        }
    }
    if (incoming)
    {
        argv.AddRange(["-incoming", "defer"]);
    }
    return argv;
}

// A guest that runs from its own boot, past its third tick: every round's source is one.
async Task<Qemu> BootAsync()
{
    var qemu = await StartAsync(incoming: false);
    await qemu.Qmp.ExecuteAsync("cont");
    if (!await WaitTickAsync(qemu.ConsoleLog, 3, TimeSpan.FromMinutes(2)))
    {
        throw new InvalidOperationException($"the guest did not boot within 2 minutes; its console:\n{string.Join('\n', File.ReadLines(qemu.ConsoleLog).TakeLast(40))}");
    }
    return qemu;
}

async Task<Qemu> StartAsync(bool incoming)
{
    var paths = new Vk.VmPaths(Path.Combine(work, $"qemu-{index++}"));
    Directory.CreateDirectory(paths.Directory);
    var info = new ProcessStartInfo(QemuCommandLine.DefaultBinary) { UseShellExecute = false };
    foreach (var a in Argv(incoming, paths))
    {
        info.ArgumentList.Add(a);
    }
    var process = Process.Start(info)!;
    processes.Add(process);
    var qmp = await QmpClient.ConnectAsync(paths.QmpSocket, TimeSpan.FromSeconds(30));
    return new Qemu(process, qmp, Path.Combine(paths.Directory, "console.log"));
}

// Both QEMUs paused: the pages (by guest-physical address) whose contents differ.
async Task<List<long>> CompareMemoryAsync(QmpClient source, QmpClient target)
{
    var a = Path.Combine(work, "source.mem");
    var b = Path.Combine(work, "target.mem");
    await source.ExecuteAsync("pmemsave", new Dictionary<string, object?> { ["val"] = 0, ["size"] = MemoryBytes, ["filename"] = a });
    await target.ExecuteAsync("pmemsave", new Dictionary<string, object?> { ["val"] = 0, ["size"] = MemoryBytes, ["filename"] = b });
    var stale = new List<long>();
    await using (var fa = File.OpenRead(a))
    await using (var fb = File.OpenRead(b))
    {
        var pa = new byte[PageSize];
        var pb = new byte[PageSize];
        for (long page = 0; page < MemoryBytes; page += PageSize)
        {
            await fa.ReadExactlyAsync(pa);
            await fb.ReadExactlyAsync(pb);
            if (!pa.AsSpan().SequenceEqual(pb))
            {
                stale.Add(page);
            }
        }
    }
    File.Delete(a);
    File.Delete(b);
    return stale;
}

static async Task QuitAsync(Qemu qemu)
{
    try
    {
        await qemu.Qmp.ExecuteAsync("quit");
    }
    catch (Exception e) when (e is QmpException or IOException)
    {
        // QEMU closes the socket as it quits.
    }
    await qemu.Process.WaitForExitAsync();
    await qemu.Qmp.DisposeAsync();
}

static async Task SetCapabilitiesAsync(QmpClient qmp)
{
    var capabilities = new[] { "events", "auto-converge" }.Select(c => new Dictionary<string, object> { ["capability"] = c, ["state"] = true }).ToArray();
    await qmp.ExecuteAsync("migrate-set-capabilities", new { capabilities });
}

static async Task CompletedAsync(QmpClient qmp)
{
    await foreach (var ev in qmp.Events.ReadAllAsync())
    {
        var status = ev.Name == "MIGRATION" ? ev.Data.GetProperty("status").GetString() : null;
        if (status is "completed" or "failed" or "cancelled")
        {
            if (status != "completed")
            {
                throw new InvalidOperationException($"migration {status}");
            }
            return;
        }
    }
}

static int LastTick(string log)
{
    var last = 0;
    if (File.Exists(log))
    {
        foreach (var line in File.ReadLines(log))
        {
            if (line.StartsWith("VMK-TICK ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(9).Trim(), CultureInfo.InvariantCulture, out var n))
            {
                last = Math.Max(last, n);
            }
        }
    }
    return last;
}

// The console log is a file QEMU appends to; polling it is the only way to follow it without a reader of our own.
static async Task<bool> WaitTickAsync(string log, int tick, TimeSpan timeout)
{
    var clock = Stopwatch.StartNew();
    while (clock.Elapsed < timeout)
    {
        if (LastTick(log) >= tick)
        {
            return true;
        }
        await Task.Delay(100);
    }
    return false;
}

static int FreePort()
{
    using var probe = new TcpListener(IPAddress.Loopback, 0);
    probe.Start();
    return ((IPEndPoint)probe.LocalEndpoint).Port;
}

internal sealed record Qemu(Process Process, QmpClient Qmp, string ConsoleLog);
