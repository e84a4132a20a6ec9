// Live migration: the raw QEMU baseline next to the system, same idle 256 MiB test guest, rounds alternating.
//   migrate-bench --daemon PATH/vmkerneld.dll --guest-dir DIR [--rounds 5]
// (a) raw: two QEMU processes on this machine, QMP migrate from one to the other, the target started with
//     -incoming and resumed with cont as soon as it has the whole state. Same argv as the VMkernel builds
//     (QemuCommandLine), a raw file as the guest's disk. Twice per round: with TLS (the daemons' CA, tls-creds-x509
//     as the daemons set it) and without; the issue's raw figures are the run whose TLS matches vmk's.
// (b) vmk: two vmkerneld daemons sharing one VMFS datastore file, through their gRPC API: PrepareIncoming on the
//     target, MigrateOut on the source, FinishIncoming on the target (lease handover in between), TLS on (the default).
// total: from the source being told to migrate (its set-up and QMP migrate, or the MigrateOut call) until the guest
//     runs on the target (cont returned, or FinishIncoming returned); preparing the target is reported as prepare_ms.
// downtime: QEMU's measured switch-over pause plus everything between the source's completion and the target's
//     cont (for vmk: revoking the source's disks, releasing and taking the leases, the FinishIncoming call).
// Prints "name: value" lines on stdout; progress on stderr.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Grpc.Core;
using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Client.Security;
using Vmk.NodeDaemon.Protos;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Qmp;
using Vk = Vmk.Vmkernel.Vm;

string? daemonDll = null, guestDir = null;
var rounds = 5;
var useTls = true;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--daemon": daemonDll = args[++i]; break;
        case "--guest-dir": guestDir = args[++i]; break;
        case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--tls": useTls = args[++i] != "off"; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (daemonDll is null || guestDir is null)
{
    Console.Error.WriteLine("usage: migrate-bench --daemon PATH/vmkerneld.dll --guest-dir DIR [--rounds N]");
    return 2;
}

var work = Path.Combine("/tmp", $"vmk-mig-{Guid.NewGuid().ToString("N")[..6]}");
var tls = Path.Combine(work, "tls");
var dsDir = Path.Combine(work, "ds");
Directory.CreateDirectory(dsDir);
CertificateAuthority.WriteSet(tls, ["localhost"], [IPAddress.Loopback]);
var daemons = new List<Process>();
var rawProcesses = new List<Process>();
try
{
    // ---- (b) setup: two daemons, one datastore, the guest booted on the first with its disk there.
    var clients = new List<(Grpc.Net.Client.GrpcChannel Channel, Daemon Client)>();
    foreach (var name in new[] { "bench-a", "bench-b" })
    {
        var (process, grpc) = await StartDaemonAsync(daemonDll, Path.Combine(work, name), tls, dsDir, guestDir, name);
        daemons.Add(process);
        var channel = NodeDaemonChannel.Create(grpc, tls);
        clients.Add((channel, new Daemon(channel)));
    }
    var device = Path.Combine(dsDir, "shared.img");
    await using (var f = File.Create(device))
    {
        f.SetLength(512L << 20);
    }
    await clients[0].Client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device, FormatIfBlank = true });
    await clients[1].Client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device });
    await clients[0].Client.Datastores.CreateDiskAsync(new CreateDiskRequest { Datastore = "ds1", Name = "bench-root", SizeBytes = 64L << 20 });
    var spec = new VmSpec
    {
        Name = "mig-bench",
        Memory = new MemorySpec { SizeBytes = 256L << 20 },
        Boot = new BootSpec { Kernel = Path.Combine(guestDir, "vmlinux"), Initrd = Path.Combine(guestDir, "initrd.gz"), Cmdline = "console=ttyS0 tsc=reliable quiet" },
    };
    spec.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "bench-root" });
    await clients[0].Client.Vms.DefineAsync(new DefineVmRequest { Spec = spec });
    await clients[0].Client.Vms.StartAsync(new VmRef { Name = spec.Name });

    // ---- (a) setup: the same guest as a plain QEMU, its disk a raw file.
    var rawDisk = Path.Combine(work, "raw-root.img");
    await using (var f = File.Create(rawDisk))
    {
        f.SetLength(64L << 20);
    }
    var rawSpec = new Vk.VmSpec
    {
        Name = "raw-bench",
        MemoryBytes = 256L << 20,
        Boot = new Vk.BootSpec { Kernel = Path.Combine(guestDir, "vmlinux"), Initrd = Path.Combine(guestDir, "initrd.gz"), Cmdline = "console=ttyS0 tsc=reliable quiet" },
        Disks = [new Vk.DiskSpec { Name = "root", File = rawDisk }],
        StartPaused = true,
    };
    var settings = new QemuHostSettings(Vmk.Vmkernel.Qemu.Accel.Accelerator.Tcg, RunAsUser: null, Sandbox: true);
    var rawIndex = 0;
    var (rawSource, rawQmp) = await StartRawAsync(rawSpec, settings, work, rawIndex++, incoming: false, rawProcesses);
    await rawQmp.ExecuteAsync("cont");

    Console.Error.WriteLine("guests booting (30 s of idle time before the first round)");
    await Task.Delay(TimeSpan.FromSeconds(30)); // both guests past their boot, idle: the state the issue measures

    // Figures per setup, each a list of one value per round.
    var figures = new Dictionary<string, List<double>>(StringComparer.Ordinal);
    void Add(string name, double value) => (figures.TryGetValue(name, out var l) ? l : figures[name] = []).Add(value);
    double Med(string name) => Median(figures[name]);
    // QEMU's own tls-creds-x509 directory for the raw side, from the same CA the daemons use.
    var rawTlsDir = Path.Combine(work, "raw-tls");
    Directory.CreateDirectory(rawTlsDir);
    foreach (var (from, to) in new[] { ("ca.crt", "ca-cert.pem"), ("tls.crt", "server-cert.pem"), ("tls.key", "server-key.pem"), ("client.crt", "client-cert.pem"), ("client.key", "client-key.pem") })
    {
        File.Copy(Path.Combine(tls, from), Path.Combine(rawTlsDir, to));
    }
    var current = 0;
    for (var round = 1; round <= rounds; round++)
    {
        // (a) raw QEMU to QEMU: with TLS (the like-for-like pair of the daemons' default) and without.
        foreach (var rawTls in new[] { true, false })
        {
            var setup = rawTls ? "raw_tls" : "raw_plain";
            var prepare = Stopwatch.StartNew();
            var (target, targetQmp) = await StartRawAsync(rawSpec, settings, work, rawIndex++, incoming: true, rawProcesses);
            await SetEventsAsync(targetQmp);
            await SetTlsAsync(targetQmp, rawTls ? "server" : null, rawTlsDir);
            var port = FreePort();
            await targetQmp.ExecuteAsync("migrate-incoming", new { uri = $"tcp:127.0.0.1:{port}" });
            var prepared = prepare.Elapsed;
            var sourceDone = WaitMigrationAsync(rawQmp);
            var targetDone = WaitMigrationAsync(targetQmp);
            // total starts where the daemon's MigrateOut starts: the source's set-up, then migrate.
            var clock = Stopwatch.StartNew();
            await SetEventsAsync(rawQmp);
            await SetTlsAsync(rawQmp, rawTls ? "client" : null, rawTlsDir);
            await rawQmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object?> { ["downtime-limit"] = 300 });
            await rawQmp.ExecuteAsync("migrate", new { uri = $"tcp:127.0.0.1:{port}" });
            await sourceDone;
            var completedAt = clock.Elapsed;
            await targetDone;
            await targetQmp.ExecuteAsync("cont");
            var total = clock.Elapsed;
            var info = await rawQmp.ExecuteAsync("query-migrate");
            var qemuDowntime = info.GetProperty("downtime").GetInt64();
            var qemuTotal = info.GetProperty("total-time").GetInt64();
            var downtime = qemuDowntime + (total - completedAt).TotalMilliseconds;
            Add($"{setup}_total_ms", total.TotalMilliseconds);
            Add($"{setup}_downtime_ms", downtime);
            Add($"{setup}_prepare_ms", prepared.TotalMilliseconds);
            Add($"{setup}_qemu_total_time_ms", qemuTotal);
            Console.Error.WriteLine($"round {round} {setup}: total {total.TotalMilliseconds:0} ms (QEMU total-time {qemuTotal} ms), downtime {downtime:0} ms " +
                $"(QEMU {qemuDowntime} ms + completion to cont {(total - completedAt).TotalMilliseconds:0} ms); prepare {prepared.TotalMilliseconds:0} ms");
            await rawQmp.ExecuteAsync("quit").ContinueWith(_ => { }, TaskScheduler.Default);
            await rawSource.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await rawQmp.DisposeAsync();
            (rawSource, rawQmp) = (target, targetQmp);
        }
        // (b) through the two daemons.
        {
            var source = clients[current].Client;
            var target = clients[1 - current].Client;
            var id = $"bench-{round}";
            var policy = new MigrationPolicy { DowntimeLimitMs = 300, DisableTls = !useTls };
            var prepare = Stopwatch.StartNew();
            var prepared = await target.Migrations.PrepareIncomingAsync(new PrepareIncomingRequest { MigrationId = id, Spec = spec, Policy = policy });
            var preparedIn = prepare.Elapsed;
            Vmk.NodeDaemon.Protos.MigrationProgress? last = null;
            var clock = Stopwatch.StartNew();
            using var call = source.Migrations.MigrateOut(new MigrateOutRequest { MigrationId = id, Vm = spec.Name, TargetUri = prepared.IncomingUri, Policy = policy });
            await foreach (var p in call.ResponseStream.ReadAllAsync())
            {
                last = p;
                if (p.Phase == "completed")
                {
                    break; // the source has handed the disks over: finish on the target at once, as the operator does
                }
            }
            var handedOver = clock.Elapsed;
            await target.Migrations.FinishIncomingAsync(new FinishIncomingRequest { MigrationId = id, Vm = spec.Name });
            var total = clock.Elapsed;
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
            if (last is not { Phase: "completed" })
            {
                throw new InvalidOperationException($"round {round}: the migration ended in {last?.Phase ?? "nothing"}");
            }
            // The guest's pause: QEMU's stop-and-copy, then the source's handover from QEMU's completion event (revoke,
            // release), then the target's FinishIncoming as the caller sees it (take the leases, cont). Not counted: the
            // stream's delivery of the "completed" sample to this process (same machine, well under a millisecond idle).
            var finish = (total - handedOver).TotalMilliseconds;
            var downtime = last.DowntimeMs + last.HandoverMs + finish;
            Add("vmk_total_ms", total.TotalMilliseconds);
            Add("vmk_downtime_ms", downtime);
            Add("vmk_prepare_ms", preparedIn.TotalMilliseconds);
            Add("vmk_qemu_total_time_ms", last.TotalMs);
            Add("vmk_handover_ms", last.HandoverMs + finish);
            Console.Error.WriteLine($"round {round} vmk {(current == 0 ? "a->b" : "b->a")}: total {total.TotalMilliseconds:0} ms (QEMU total-time {last.TotalMs} ms), downtime {downtime:0} ms " +
                $"(QEMU {last.DowntimeMs} ms + source handover {last.HandoverMs} ms + FinishIncoming {finish:0} ms); prepare {preparedIn.TotalMilliseconds:0} ms");
            current = 1 - current;
        }
    }
    await clients[current].Client.Vms.StopAsync(new VmRef { Name = spec.Name });

    // The issue's figures on the like-for-like pair: raw with TLS exactly when the daemons use it.
    var raw = useTls ? "raw_tls" : "raw_plain";
    Console.WriteLine($"raw_total_ms: {Med($"{raw}_total_ms"):0}");
    Console.WriteLine($"raw_downtime_ms: {Med($"{raw}_downtime_ms"):0}");
    Console.WriteLine($"vmk_total_ms: {Med("vmk_total_ms"):0}");
    Console.WriteLine($"vmk_downtime_ms: {Med("vmk_downtime_ms"):0}");
    Console.WriteLine($"migrate_total_ratio: {Med("vmk_total_ms") / Med($"{raw}_total_ms"):0.00}");
    Console.WriteLine($"tls: {(useTls ? "on" : "off")} (raw and vmk alike)");
    Console.WriteLine($"raw_prepare_ms: {Med($"{raw}_prepare_ms"):0}");
    Console.WriteLine($"vmk_prepare_ms: {Med("vmk_prepare_ms"):0}");
    Console.WriteLine($"raw_qemu_total_time_ms: {Med($"{raw}_qemu_total_time_ms"):0}");
    Console.WriteLine($"vmk_qemu_total_time_ms: {Med("vmk_qemu_total_time_ms"):0}");
    Console.WriteLine($"vmk_handover_ms: {Med("vmk_handover_ms"):0}");
    var other = useTls ? "raw_plain" : "raw_tls";
    Console.WriteLine($"{other}_total_ms: {Med($"{other}_total_ms"):0}");
    Console.WriteLine($"{other}_downtime_ms: {Med($"{other}_downtime_ms"):0}");
    foreach (var (channel, _) in clients)
    {
        channel.Dispose();
    }
    return 0;
}
finally
{
    foreach (var p in rawProcesses.Concat(daemons))
    {
        try
        {
            if (!p.HasExited)
            {
                p.Kill();
                await p.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
        }
    }
    foreach (var dir in Directory.EnumerateDirectories("/proc"))
    {
        if (int.TryParse(Path.GetFileName(dir), out var pid) && SafeRead($"/proc/{pid}/cmdline").Contains(work + "/", StringComparison.Ordinal))
        {
            try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
        }
    }
    Directory.Delete(work, recursive: true);
    RawCgroup.Remove();
}

static async Task<(Process, Uri)> StartDaemonAsync(string dll, string state, string tls, string dsDir, string guestDir, string name)
{
    var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var a in new[] { dll, "--state-dir", state, "--tls-dir", tls, "--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
        "--image-dirs", guestDir, "--datastore-dirs", dsDir, "--accelerator", "tcg", "--host-name", name, "--migration-address", "127.0.0.1" })
    {
        info.ArgumentList.Add(a);
    }
    info.Environment["Logging__LogLevel__Default"] = "Warning";
    info.Environment["Logging__LogLevel__Vmk.Vmkernel.Migration"] = "Information";
    info.Environment["Logging__LogLevel__Vmk.Vmkernel.Vm"] = "Information"; // where an incoming start spends its time
    var daemon = Process.Start(info)!;
    var ready = new TaskCompletionSource<string>();
    daemon.OutputDataReceived += (_, e) =>
    {
        if (e.Data?.StartsWith("vmkerneld ready ", StringComparison.Ordinal) == true)
        {
            ready.TrySetResult(e.Data);
        }
        else if (e.Data is { Length: > 0 } && !e.Data.Contains("Starting VM", StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"{name}: {e.Data}"); // the daemon's log: where each migration's time went
        }
    };
    daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"{name}: {e.Data}"); };
    daemon.BeginOutputReadLine();
    daemon.BeginErrorReadLine();
    var line = await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
    return (daemon, new Uri(line.Split(' ').First(p => p.StartsWith("grpc=", StringComparison.Ordinal))[5..]));
}

static async Task<(Process, QmpClient)> StartRawAsync(Vk.VmSpec spec, QemuHostSettings settings, string work, int index, bool incoming, List<Process> started)
{
    var paths = new Vk.VmPaths(Path.Combine(work, $"raw-{index}"));
    Directory.CreateDirectory(paths.Directory);
    var argv = QemuCommandLine.Build(spec, paths, settings).ToList();
    if (incoming)
    {
        argv.AddRange(["-incoming", "defer"]);
    }
    var info = new ProcessStartInfo(QemuCommandLine.DefaultBinary) { UseShellExecute = false, RedirectStandardError = true };
    foreach (var a in argv)
    {
        info.ArgumentList.Add(a);
    }
    var process = Process.Start(info)!;
    started.Add(process);
    RawCgroup.Join(process.Id);
    var qmp = await QmpClient.ConnectAsync(paths.QmpSocket, TimeSpan.FromSeconds(30));
    return (process, qmp);
}

static async Task SetEventsAsync(QmpClient qmp)
{
    var capabilities = new List<Dictionary<string, object>> { new() { ["capability"] = "events", ["state"] = true } };
    await qmp.ExecuteAsync("migrate-set-capabilities", new { capabilities });
}

// As the daemons do: a tls-creds-x509 object (verify-peer on both ends) and the tls-creds parameter, or none.
static async Task SetTlsAsync(QmpClient qmp, string? endpoint, string dir)
{
    const string id = "bench-tls";
    try
    {
        await qmp.ExecuteAsync("object-del", new { id });
    }
    catch (QmpCommandException)
    {
    }
    if (endpoint is not null)
    {
        await qmp.ExecuteAsync("object-add", new Dictionary<string, object?> { ["qom-type"] = "tls-creds-x509", ["id"] = id, ["dir"] = dir, ["endpoint"] = endpoint, ["verify-peer"] = true });
    }
    await qmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object?> { ["tls-creds"] = endpoint is null ? "" : id });
}

static async Task WaitMigrationAsync(QmpClient qmp)
{
    await foreach (var ev in qmp.Events.ReadAllAsync())
    {
        if (ev.Name == "MIGRATION" && ev.Data.GetProperty("status").GetString() is "completed" or "failed" or "cancelled")
        {
            var status = ev.Data.GetProperty("status").GetString();
            if (status != "completed")
            {
                throw new InvalidOperationException($"raw migration {status}");
            }
            return;
        }
    }
}

static int FreePort()
{
    using var probe = new TcpListener(IPAddress.Loopback, 0);
    probe.Start();
    return ((IPEndPoint)probe.LocalEndpoint).Port;
}

static double Median(List<double> values)
{
    values.Sort();
    return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
}

static string SafeRead(string path)
{
    try
    {
        return File.ReadAllText(path);
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        return "";
    }
}

/// <summary>The daemon services the benchmark calls.</summary>
internal sealed class Daemon(Grpc.Net.Client.GrpcChannel channel)
{
    public MigrationService.MigrationServiceClient Migrations { get; } = new(channel);

    public VmService.VmServiceClient Vms { get; } = new(channel);

    public DatastoreService.DatastoreServiceClient Datastores { get; } = new(channel);
}

/// <summary>
/// The raw QEMUs get the CPU share the daemons' QEMUs get: vmkerneld puts each VM's QEMU into a cgroup under the
/// "vmkernel" parent (cgroup v1 cpu), which competes with every other process of the machine as one group. Left in
/// the root group, the raw QEMUs would each weigh as much as that whole group, a large advantage on a loaded machine.
/// </summary>
internal static class RawCgroup
{
    private static readonly string Directory = $"/sys/fs/cgroup/cpu/vmkernel/vm-raw-bench-{Environment.ProcessId}";

    public static void Join(int pid)
    {
        if (!System.IO.Directory.Exists("/sys/fs/cgroup/cpu/vmkernel"))
        {
            return; // no VM cgroups on this machine: the daemons' QEMUs run in the root group as well
        }
        System.IO.Directory.CreateDirectory(Directory);
        File.WriteAllText(Path.Combine(Directory, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture));
    }

    public static void Remove()
    {
        try
        {
            if (System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.Delete(Directory);
            }
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"cgroup {Directory} not removed: {e.Message}");
        }
    }
}
