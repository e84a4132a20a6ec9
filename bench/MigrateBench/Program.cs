// Live migration: the raw QEMU baseline next to a VirtualMachineMigration, same idle 256 MiB test guest, rounds
// alternating (issue 9's benchmark).
//   migrate-bench --kubeconfig FILE --vm NAME --hosts A,B --guest-dir DIR [--rounds 5] [--tls on|off]
// (a) raw: two QEMU processes on this machine, QMP migrate from one to the other, the target started with
//     -incoming and resumed with cont as soon as it has the whole state. Same argv as the VMkernel builds
//     (QemuCommandLine), a raw file as the guest's disk. Twice per round: with TLS (tls-creds-x509 with a CA, verify-peer
//     on both ends and the RFC 7919 DH group, as the daemons set it) and without; the issue's raw figures are the
//     run whose TLS matches vmk's.
// (b) vmk: a VirtualMachineMigration created through the API server of `vmctl standalone --hosts 2` (two vmkerneld
//     in network namespaces sharing a VMFS datastore, the operator), moving the VM between the two hosts.
// total: from asking for the migration until the guest runs on the target. Raw: starting the target's QEMU
//     (-incoming defer, TLS object, migrate-incoming), the source's set-up and migrate, until the target's cont
//     returned. vmk: the create request until a client sees phase Succeeded (the operator's admission,
//     PrepareIncoming, the transfer, the lease handover, FinishIncoming, the status write; the client watches the
//     migration rather than polling it). Printed apart: the raw
//     target's start (raw_prepare_ms) and vmk's status.startTime..completionTime (vmk_status_total_ms).
// downtime: the guest's pause. Raw: QEMU's measured stop-and-copy plus its completion event to the target's cont
//     returned. vmk: status.downtime: from the source QEMU's STOP event (paused_at) to the target's Running since,
//     after the target took the leases and sent cont (one clock here: both hosts are namespaces of this machine).
// Prints "name: value" lines on stdout; progress on stderr.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using Vmk.NodeDaemon.Client.Security;
using Vmk.Vmkernel.Migration;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Qmp;
using Vk = Vmk.Vmkernel.Vm;

const string Group = "vmkernel.io";
const string Version = "v1alpha1";
// The default policy's downtimeLimit (the CRD's default, MigrationPolicies.DefaultDowntimeLimit), which vmk runs with;
// the raw QEMUs get the same downtime-limit and QEMU's default bandwidth, as the daemons set them.
const int DefaultDowntimeLimitMs = 30;
string? kubeconfig = null, vmName = null, guestDir = null;
string[] hosts = [];
var ns = "default";
var rounds = 5;
var useTls = true;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--kubeconfig": kubeconfig = args[++i]; break;
        case "--vm": vmName = args[++i]; break;
        case "--namespace": ns = args[++i]; break;
        case "--hosts": hosts = args[++i].Split(','); break;
        case "--guest-dir": guestDir = args[++i]; break;
        case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--tls": useTls = args[++i] != "off"; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (kubeconfig is null || vmName is null || hosts.Length != 2 || guestDir is null)
{
    Console.Error.WriteLine("usage: migrate-bench --kubeconfig FILE --vm NAME --hosts A,B --guest-dir DIR [--rounds N] [--tls on|off]");
    return 2;
}

var work = Path.Combine("/tmp", $"vmk-mig-{Guid.NewGuid().ToString("N")[..6]}");
var tls = Path.Combine(work, "tls");
Directory.CreateDirectory(work);
CertificateAuthority.WriteSet(tls, ["localhost"], [IPAddress.Loopback]);
var rawProcesses = new List<Process>();
using var kube = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
try
{
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

    Console.Error.WriteLine("raw guest booting (30 s of idle time before the first round)");
    await Task.Delay(TimeSpan.FromSeconds(30)); // the guests past their boot, idle: the state the issue measures

    var figures = new Dictionary<string, List<double>>(StringComparer.Ordinal);
    var counting = false;
    void Add(string name, double value)
    {
        if (counting)
        {
            (figures.TryGetValue(name, out var l) ? l : figures[name] = []).Add(value);
        }
    }
    double Med(string name) => Median(figures[name]);
    // QEMU's own tls-creds-x509 directory for the raw side, from the bench's CA, with the DH group the daemons install.
    var rawTlsDir = Path.Combine(work, "raw-tls");
    Directory.CreateDirectory(rawTlsDir);
    foreach (var (from, to) in new[] { ("ca.crt", "ca-cert.pem"), ("tls.crt", "server-cert.pem"), ("tls.key", "server-key.pem"), ("client.crt", "client-cert.pem"), ("client.key", "client-key.pem") })
    {
        File.Copy(Path.Combine(tls, from), Path.Combine(rawTlsDir, to));
    }
    await File.WriteAllTextAsync(Path.Combine(rawTlsDir, "dh-params.pem"), MigrationTlsDirectory.DhParameters);
    // Round 0 warms both sides up and is not counted: the first migration of a freshly booted guest is slow on
    // either side (seconds, not hundreds of ms), and the daemons' and operator's first calls pay for JIT
    // compilation and new connections.
    // The test guest boots into one of two states at random: 37 or 64 MiB of memory to send (the same image and
    // arguments; seen on both sides). A raw guest in the other state than the vmk guest would compare unlike
    // migrations (at 128 MiB/s, 27 MiB are 200 ms), so after the warm-up the raw guest is booted again, up to 4 times,
    // until it sends within a fifth of what the vmk guest sends.
    long rawSent = 0, vmkSent = 0;
    var rawBoots = 1;
    for (var round = 0; round <= rounds; round++)
    {
        if (round == 1 && Math.Abs(rawSent - vmkSent) > vmkSent / 5 && rawBoots < 5)
        {
            Console.Error.WriteLine($"the raw guest sent {rawSent >> 20} MiB, the vmk guest {vmkSent >> 20} MiB: booting the raw guest again (30 s of idle time)");
            await rawQmp.ExecuteAsync("quit").ContinueWith(_ => { }, TaskScheduler.Default);
            await rawSource.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await rawQmp.DisposeAsync();
            (rawSource, rawQmp) = await StartRawAsync(rawSpec, settings, work, rawIndex++, incoming: false, rawProcesses);
            await rawQmp.ExecuteAsync("cont");
            await Task.Delay(TimeSpan.FromSeconds(30));
            rawBoots++;
            round = 0;
        }
        counting = round > 0;
        // (a) raw QEMU to QEMU: with TLS (the like-for-like pair of the default policy) and without.
        foreach (var rawTls in new[] { true, false })
        {
            var setup = rawTls ? "raw_tls" : "raw_plain";
            var clock = Stopwatch.StartNew();
            var (target, targetQmp) = await StartRawAsync(rawSpec, settings, work, rawIndex++, incoming: true, rawProcesses);
            var spawned = clock.Elapsed;
            await SetEventsAsync(targetQmp);
            await SetTlsAsync(targetQmp, rawTls ? "server" : null, rawTlsDir);
            var tlsReady = clock.Elapsed;
            var port = FreePort();
            await targetQmp.ExecuteAsync("migrate-incoming", new { uri = $"tcp:127.0.0.1:{port}" });
            var prepared = clock.Elapsed;
            var sourceDone = WaitMigrationAsync(rawQmp);
            var targetDone = WaitMigrationAsync(targetQmp);
            await SetEventsAsync(rawQmp);
            await SetTlsAsync(rawQmp, rawTls ? "client" : null, rawTlsDir);
            await rawQmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object?> { ["downtime-limit"] = DefaultDowntimeLimitMs, ["max-bandwidth"] = MigrationPolicy.QemuDefaultBandwidth });
            await rawQmp.ExecuteAsync("migrate", new { uri = $"tcp:127.0.0.1:{port}" });
            await sourceDone;
            var completedAt = clock.Elapsed;
            await targetDone;
            await targetQmp.ExecuteAsync("cont");
            var total = clock.Elapsed;
            var info = await rawQmp.ExecuteAsync("query-migrate");
            var qemuDowntime = info.GetProperty("downtime").GetInt64();
            var qemuTotal = info.GetProperty("total-time").GetInt64();
            var sent = info.GetProperty("ram").GetProperty("transferred").GetInt64();
            if (rawTls == useTls)
            {
                rawSent = sent;
                Add("raw_sent_mib", sent >> 20);
            }
            var downtime = qemuDowntime + (total - completedAt).TotalMilliseconds;
            Add($"{setup}_total_ms", total.TotalMilliseconds);
            Add($"{setup}_downtime_ms", downtime);
            Add($"{setup}_prepare_ms", prepared.TotalMilliseconds);
            Add($"{setup}_qemu_total_time_ms", qemuTotal);
            Console.Error.WriteLine($"round {(counting ? round : "0 (warm-up)")} {setup}: total {total.TotalMilliseconds:0} ms (target start {prepared.TotalMilliseconds:0} ms: QEMU and QMP {spawned.TotalMilliseconds:0} ms, TLS object {(tlsReady - spawned).TotalMilliseconds:0} ms; QEMU total-time {qemuTotal} ms, {sent >> 20} MiB sent), " +
                $"downtime {downtime:0} ms (QEMU {qemuDowntime} ms + completion to cont {(total - completedAt).TotalMilliseconds:0} ms)");
            await rawQmp.ExecuteAsync("quit").ContinueWith(_ => { }, TaskScheduler.Default);
            await rawSource.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await rawQmp.DisposeAsync();
            (rawSource, rawQmp) = (target, targetQmp);
        }
        // (b) a VirtualMachineMigration to the host the VM is not on.
        {
            var vm = await GetAsync(kube, "virtualmachines", vmName);
            var from = vm?["status"]?["host"]?.GetValue<string>() ?? throw new InvalidOperationException($"VirtualMachine {vmName} has no status.host");
            var to = hosts.Single(h => h != from);
            var name = $"bench-{Guid.NewGuid().ToString("N")[..6]}";
            var manifest = new JsonObject
            {
                ["apiVersion"] = $"{Group}/{Version}",
                ["kind"] = "VirtualMachineMigration",
                ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns },
                ["spec"] = new JsonObject { ["vmName"] = vmName, ["targetHost"] = to, ["policy"] = new JsonObject { ["encrypted"] = useTls } },
            };
            var clock = Stopwatch.StartNew();
            await kube.CustomObjects.CreateNamespacedCustomObjectAsync(manifest, Group, Version, ns, "virtualmachinemigrations");
            // A client watching the migration (as `kubectl get vmim -w` does), not polling it: a poll loop would take
            // CPU from the QEMUs on this 2-core machine, which only the vmk side would pay for.
            var status = await WaitForEndAsync(kube, name, round);
            var wall = clock.Elapsed;
            var downtime = double.Parse(status!["downtime"]!.GetValue<string>().TrimEnd('m', 's'), CultureInfo.InvariantCulture);
            var statusTotal = (Time(status["completionTime"]) - Time(status["startTime"])).TotalMilliseconds;
            Add("vmk_total_ms", wall.TotalMilliseconds);
            Add("vmk_downtime_ms", downtime);
            Add("vmk_status_total_ms", statusTotal);
            vmkSent = status["progress"]?["transferredBytes"]?.GetValue<long>() ?? 0;
            Add("vmk_sent_mib", vmkSent >> 20);
            Console.Error.WriteLine($"round {(counting ? round : "0 (warm-up)")} vmk {from} -> {to}: total {wall.TotalMilliseconds:0} ms (status start to completion {statusTotal:0} ms), downtime {downtime:0} ms; {status["message"]}");
            // The next round starts from the VM Running on its new host (not counted).
            var settled = Stopwatch.StartNew();
            while ((await GetAsync(kube, "virtualmachines", vmName))?["status"] is not { } s || s["host"]?.GetValue<string>() != to || s["phase"]?.GetValue<string>() != "Running")
            {
                if (settled.Elapsed > TimeSpan.FromMinutes(2))
                {
                    throw new TimeoutException($"VirtualMachine {vmName} not Running on {to} 2 minutes after {name}");
                }
                await Task.Delay(50);
            }
            await kube.CustomObjects.DeleteNamespacedCustomObjectAsync(Group, Version, ns, "virtualmachinemigrations", name);
        }
    }

    // The issue's figures on the like-for-like pair: raw with TLS exactly when the VMIM uses it.
    var raw = useTls ? "raw_tls" : "raw_plain";
    Console.WriteLine($"raw_total_ms: {Med($"{raw}_total_ms"):0}");
    Console.WriteLine($"raw_downtime_ms: {Med($"{raw}_downtime_ms"):0}");
    Console.WriteLine($"vmk_total_ms: {Med("vmk_total_ms"):0}");
    Console.WriteLine($"vmk_downtime_ms: {Med("vmk_downtime_ms"):0}");
    Console.WriteLine($"migrate_total_ratio: {Med("vmk_total_ms") / Med($"{raw}_total_ms"):0.00}");
    Console.WriteLine($"tls: {(useTls ? "on" : "off")} (raw and vmk alike)");
    Console.WriteLine($"raw_prepare_ms: {Med($"{raw}_prepare_ms"):0}");
    Console.WriteLine($"raw_qemu_total_time_ms: {Med($"{raw}_qemu_total_time_ms"):0}");
    Console.WriteLine($"vmk_status_total_ms: {Med("vmk_status_total_ms"):0}");
    var other = useTls ? "raw_plain" : "raw_tls";
    Console.WriteLine($"{other}_total_ms: {Med($"{other}_total_ms"):0}");
    Console.WriteLine($"{other}_downtime_ms: {Med($"{other}_downtime_ms"):0}");
    Console.WriteLine($"guest_sent_mib: raw {Med("raw_sent_mib"):0}, vmk {Med("vmk_sent_mib"):0} (raw guest booted {rawBoots} time{(rawBoots > 1 ? "s" : "")})");
    return 0;
}
finally
{
    foreach (var p in rawProcesses)
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
    Directory.Delete(work, recursive: true);
    RawCgroup.Remove();
}

async Task<JsonNode?> GetAsync(Kubernetes client, string plural, string name)
{
    try
    {
        var o = await client.CustomObjects.GetNamespacedCustomObjectAsync(Group, Version, ns, plural, name);
        return JsonSerializer.SerializeToNode(o);
    }
    catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
    {
        return null;
    }
}

// The migration's status once a watch on it shows a final phase: Succeeded returns it, Failed or Cancelled throws.
async Task<JsonNode> WaitForEndAsync(Kubernetes client, string name, int round)
{
    using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(10));
    while (true)
    {
        try
        {
            var events = client.CustomObjects.WatchListNamespacedCustomObjectAsync(Group, Version, ns, "virtualmachinemigrations",
                fieldSelector: $"metadata.name={name}", timeoutSeconds: 600, cancellationToken: deadline.Token);
            await foreach (var (_, item) in events)
            {
                var status = JsonSerializer.SerializeToNode(item)?["status"];
                switch (status?["phase"]?.GetValue<string>())
                {
                    case "Succeeded":
                        return status!;
                    case "Failed" or "Cancelled":
                        throw new InvalidOperationException($"round {round}: migration {name} {status!["phase"]}: {status["message"]}");
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"round {round}: migration {name} not finished after 10 minutes");
        }
        // The watch ended without a final phase (the server closed it): watch again, from the current state.
    }
}

static DateTimeOffset Time(JsonNode? node) => DateTimeOffset.Parse(node!.GetValue<string>(), CultureInfo.InvariantCulture);

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
