// Memory overhead of vmkerneld and of each VM's QEMU, with N test guests booted through the daemon's API.
//   overhead-bench --daemon PATH/vmkerneld.dll --guest-dir DIR [--vms 10] [--memory-mib 256]
// Prints the figures on stdout ("name: value"); progress goes to stderr.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Grpc.Core;
using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Client.Security;
using Vmk.NodeDaemon.Protos;

string? daemonDll = null, guestDir = null;
var vmCount = 10;
long memoryMib = 256;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--daemon": daemonDll = args[++i]; break;
        case "--guest-dir": guestDir = args[++i]; break;
        case "--vms": vmCount = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--memory-mib": memoryMib = long.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (daemonDll is null || guestDir is null)
{
    Console.Error.WriteLine("usage: overhead-bench --daemon PATH/vmkerneld.dll --guest-dir DIR [--vms N] [--memory-mib M]");
    return 2;
}

var work = Path.Combine("/tmp", $"vmk-ovh-{Guid.NewGuid().ToString("N")[..6]}");
var state = Path.Combine(work, "s");
var tls = Path.Combine(work, "tls");
CertificateAuthority.WriteSet(tls, ["localhost"], [IPAddress.Loopback]);
Process? daemon = null;
try
{
    var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var a in new[] { daemonDll, "--state-dir", state, "--tls-dir", tls, "--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
        "--image-dirs", guestDir, "--accelerator", "tcg", "--host-name", "bench" })
    {
        info.ArgumentList.Add(a);
    }
    info.Environment["Logging__LogLevel__Default"] = "Warning";
    daemon = Process.Start(info)!;
    var ready = new TaskCompletionSource<string>();
    daemon.OutputDataReceived += (_, e) => { if (e.Data?.StartsWith("vmkerneld ready ", StringComparison.Ordinal) == true) ready.TrySetResult(e.Data); };
    daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"vmkerneld: {e.Data}"); };
    daemon.BeginOutputReadLine();
    daemon.BeginErrorReadLine();
    var line = await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
    var grpc = new Uri(line.Split(' ').First(p => p.StartsWith("grpc=", StringComparison.Ordinal))[5..]);
    var metrics = new Uri(line.Split(' ').First(p => p.StartsWith("metrics=", StringComparison.Ordinal))[8..]);
    using var channel = NodeDaemonChannel.Create(grpc, tls);
    var host = new HostService.HostServiceClient(channel);
    var vms = new VmService.VmServiceClient(channel);
    using var http = new HttpClient();

    // The same calls in both measurements: the idle daemon has served the API and a scrape once too.
    async Task ExerciseAsync()
    {
        await host.GetInfoAsync(new GetHostInfoRequest());
        await vms.ListAsync(new ListVmsRequest());
        await http.GetStringAsync(new Uri(metrics, "/metrics"));
    }
    await ExerciseAsync();
    var idle = await SettledRssAsync(daemon.Id);
    Console.Error.WriteLine($"daemon idle RSS {idle / 1048576.0:0.0} MiB; starting {vmCount} guests");

    var clock = Stopwatch.StartNew();
    var boots = new List<Task>();
    for (var n = 0; n < vmCount; n++)
    {
        var name = $"bench-{n}";
        await vms.DefineAsync(new DefineVmRequest
        {
            Spec = new VmSpec
            {
                Name = name,
                Memory = new MemorySpec { SizeBytes = memoryMib << 20 },
                Boot = new BootSpec { Kernel = Path.Combine(guestDir, "vmlinux"), Initrd = Path.Combine(guestDir, "initrd.gz"), Cmdline = "console=ttyS0 tsc=reliable quiet" },
            },
        });
        await vms.StartAsync(new VmRef { Name = name });
        boots.Add(WaitForLineAsync(vms, name, "VMK-GUEST-UP", TimeSpan.FromMinutes(15)));
    }
    await Task.WhenAll(boots);
    Console.Error.WriteLine($"{vmCount} guests up after {clock.Elapsed.TotalSeconds:0} s");
    await ExerciseAsync();
    var loaded = await SettledRssAsync(daemon.Id);

    var list = await vms.ListAsync(new ListVmsRequest());
    var qemuOverheads = new List<double>();
    var fileBacked = new List<double>();
    foreach (var vm in list.Vms)
    {
        var pid = vm.Status.QemuPid;
        var rss = ReadRss(pid);
        var ram = GuestRamResident(pid, memoryMib << 20);
        var files = FileBackedResident(pid);
        qemuOverheads.Add((rss - ram) / 1048576.0);
        fileBacked.Add(files / 1048576.0);
        Console.Error.WriteLine($"{vm.Spec.Name}: QEMU pid {pid} RSS {rss / 1048576.0:0.0} MiB, guest RAM resident {ram / 1048576.0:0.0} MiB, file-backed {files / 1048576.0:0.0} MiB");
    }
    var median = Median(qemuOverheads);
    var medianFiles = Median(fileBacked);

    Console.WriteLine($"daemon_rss_idle_mib: {idle / 1048576.0:0.0}");
    Console.WriteLine($"daemon_rss_with_{vmCount}_vms_mib: {loaded / 1048576.0:0.0}");
    Console.WriteLine($"daemon_rss_per_vm_mib: {(loaded - idle) / (double)vmCount / 1048576.0:0.00}");
    Console.WriteLine($"qemu_rss_per_vm_mib: {median:0.0}");
    // Of that, file-backed pages (the kernel image QEMU loads, its binary and libraries) are page cache shared by
    // every QEMU on the host; the rest is each QEMU's own (heap, TCG translation cache, firmware/initrd copies).
    Console.WriteLine($"qemu_rss_per_vm_file_backed_shared_mib: {medianFiles:0.0}");
    Console.WriteLine($"qemu_rss_per_vm_private_mib: {median - medianFiles:0.0}");

    foreach (var vm in list.Vms)
    {
        await vms.StopAsync(new VmRef { Name = vm.Spec.Name });
    }
    return 0;
}
finally
{
    if (daemon is { HasExited: false })
    {
        daemon.Kill();
        await daemon.WaitForExitAsync();
    }
    foreach (var dir in Directory.EnumerateDirectories("/proc"))
    {
        if (int.TryParse(Path.GetFileName(dir), out var pid) && SafeRead($"/proc/{pid}/cmdline").Contains(state + "/", StringComparison.Ordinal))
        {
            try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
        }
    }
    Directory.Delete(work, recursive: true);
}

// Resident set after the runtime has settled: the median of several samples a second apart.
static async Task<long> SettledRssAsync(int pid)
{
    var samples = new List<long>();
    for (var i = 0; i < 5; i++)
    {
        await Task.Delay(TimeSpan.FromSeconds(1));
        samples.Add(ReadRss(pid));
    }
    samples.Sort();
    return samples[samples.Count / 2];
}

static long ReadRss(int pid)
{
    foreach (var l in File.ReadLines($"/proc/{pid}/status"))
    {
        if (l.StartsWith("VmRSS:", StringComparison.Ordinal))
        {
            return long.Parse(l[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
    }
    return 0;
}

// Guest RAM is one anonymous mapping of the configured size (QEMU's "-m", allocated with mmap and aligned); the
// part of it that is resident is what the guest touched. Everything else QEMU holds is its own overhead.
static long GuestRamResident(int pid, long ramBytes)
{
    long best = 0;
    long bestSize = long.MaxValue;
    long size = 0;
    bool anonymous = false;
    foreach (var l in File.ReadLines($"/proc/{pid}/smaps"))
    {
        var first = l.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (first.Length >= 5 && first[0].Contains('-', StringComparison.Ordinal) && !first[0].EndsWith(':'))
        {
            var range = first[0].Split('-');
            size = long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) - long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            anonymous = first.Length == 5;
        }
        else if (l.StartsWith("Rss:", StringComparison.Ordinal) && anonymous && size >= ramBytes && size <= ramBytes + (8L << 20) && size < bestSize)
        {
            best = long.Parse(l[4..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            bestSize = size;
        }
    }
    return best;
}

static double Median(List<double> values)
{
    values.Sort();
    return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
}

// Resident pages of mappings backed by a file (path starting with '/'): page cache, shared between processes.
static long FileBackedResident(int pid)
{
    long total = 0;
    var file = false;
    foreach (var l in File.ReadLines($"/proc/{pid}/smaps"))
    {
        var f = l.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length >= 5 && f[0].Contains('-', StringComparison.Ordinal) && !f[0].EndsWith(':'))
        {
            file = f.Length >= 6 && f[5].StartsWith('/');
        }
        else if (file && l.StartsWith("Rss:", StringComparison.Ordinal))
        {
            total += long.Parse(l[4..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
    }
    return total;
}

static string SafeRead(string path)
{
    try { return File.ReadAllText(path).Replace('\0', ' '); } catch (IOException) { return ""; } catch (UnauthorizedAccessException) { return ""; }
}

static async Task WaitForLineAsync(VmService.VmServiceClient vms, string name, string marker, TimeSpan deadline)
{
    using var cts = new CancellationTokenSource(deadline);
    using var call = vms.Console(cancellationToken: cts.Token);
    await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { Name = name, ReplayHistory = true } });
    var seen = new StringBuilder();
    while (await call.ResponseStream.MoveNext(cts.Token))
    {
        seen.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
        if (seen.ToString().Contains(marker, StringComparison.Ordinal))
        {
            return;
        }
    }
    throw new RpcException(new Status(StatusCode.Aborted, $"{name}: console ended before {marker}"));
}
