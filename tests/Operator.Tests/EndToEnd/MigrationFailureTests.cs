using System.Net;
using System.Text.Json.Nodes;
using Grpc.Core;
using k8s;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Migrations;
using Vmk.Operator.Controllers.VirtualMachines;
using Vmk.Vmkernel.Vmfs;
using Xunit.Abstractions;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>
/// vMotion's failure cases (issue 9) on real parts: two vmkerneld processes sharing a VMFS datastore file, QEMU
/// (TCG), the API server and the operator. A part is killed, restarted or cut off while a slow migration (policy
/// bandwidth 1 MiB/s) is transferring; what a user sees afterwards is asserted: the migration's phase and reason,
/// the guest's ticks (one guest, never rebooted), its QEMU, the disk lease's owner as VMFS records it. Host B's
/// migrations listen on a loopback address of its own so the kernel can cut that network alone.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class MigrationFailureTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Ns = "migfail";
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(180);
    private static readonly TimeSpan Move = TimeSpan.FromSeconds(180);
    private static readonly JsonObject Slow = new() { ["encrypted"] = false, ["bandwidth"] = "1Mi" };
    private readonly IPAddress _bMigration = new([127, (byte)Random.Shared.Next(64, 250), (byte)Random.Shared.Next(0, 256), (byte)Random.Shared.Next(2, 254)]);
    private TestCluster _cluster = null!;
    private TestNode _a = null!;
    private TestNode _b = null!;
    private string _datastore = "";

    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.StartAsync();
        var tag = Guid.NewGuid().ToString("N")[..4];
        _a = await _cluster.StartHostAsync("a-" + tag);
        _b = await StartBAsync("b-" + tag);
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        // The daemons die before their QEMUs in the cluster's disposal, so nobody removed the guests' cgroups
        // (named after namespace and VM: this class's namespace is its own). rmdir removes only an empty one.
        foreach (var dir in Directory.EnumerateDirectories("/sys/fs/cgroup").Select(c => Path.Combine(c, "vmkernel")).Where(Directory.Exists)
                     .SelectMany(v => Directory.EnumerateDirectories(v, $"vm-{Ns}-*")))
        {
            try
            {
                Directory.Delete(dir);
            }
            catch (IOException)
            {
            }
        }
    }

    [Fact]
    public async Task A_migration_whose_target_daemon_dies_or_whose_network_is_cut_fails_and_the_guest_stays_on_its_source()
    {
        await using var op = _cluster.StartOperator();
        await StartGuestAsync("anchored", _a);
        var sourcePid = QemuPidsOf(_a).Single();
        var disk = VmNames.DiskName(Ns, "anchored", "seq");
        await using var console = new Consoles(_cluster, VmNames.DaemonName(Ns, "anchored"));
        console.Follow(_a);
        await console.WaitAsync(IsTick, Boot, "ticks on host A");
        Assert.Equal(_a.Name, LeaseOwner(disk));

        // The target's daemon dies (SIGKILL) while memory is on its way. Its QEMU outlives it, as every QEMU
        // outlives its daemon, and would take the whole state in; nobody could resume it there.
        await CreateMigrationAsync("doomed", "anchored", _b.Name, Slow);
        await WaitTransferringAsync("doomed");
        var targetPid = QemuPidsOf(_b).Single();
        await _b.Daemon.KillAsync();
        var m = await FinishedAsync("doomed");
        Assert.True(m.Phase == "Failed", m.Status?.ToJsonString());
        Assert.Equal("TargetLost", TestCluster.Condition(m, "Ready", "reason"));
        Assert.Contains($"host {_b.Name}", CustomObject.Str(m.Status, "message"), StringComparison.Ordinal);
        await StaysOnSourceAsync(console, sourcePid, disk);
        // Its source hung up: the orphaned target QEMU ends by itself, with nothing resumed.
        await Eventually.TrueAsync(() => !Directory.Exists($"/proc/{targetPid}"), "the target QEMU of the failed migration gone", Move);

        // B's daemon back: no copy of the guest there, not even a stale definition.
        _b = await StartBAsync(_b.Name);
        var onB = await _cluster.Vms(_b).ListAsync(new ListVmsRequest());
        Assert.DoesNotContain(onB.Vms, v => v.Spec.Name == VmNames.DaemonName(Ns, "anchored"));

        // The migration network to B is cut mid-transfer: no reset, the bytes just stop. After the no-progress
        // timeout (30 s) the migration fails, the source runs on and B's waiting QEMU is removed.
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, _b.Name), h => h?.Phase == "Ready", Move, "host B Ready again",
            h => h?.Status?.ToJsonString());
        await CreateMigrationAsync("cut", "anchored", _b.Name, Slow);
        await WaitTransferringAsync("cut");
        await using (await MigrationNetworkCut.StartAsync(_bMigration))
        {
            m = await FinishedAsync("cut");
        }
        Assert.True(m.Phase == "Failed", m.Status?.ToJsonString());
        Assert.Contains("no progress for 30 s", CustomObject.Str(m.Status, "message"), StringComparison.Ordinal);
        await StaysOnSourceAsync(console, sourcePid, disk);
        Assert.Empty(QemuPidsOf(_b));
        var events = await _cluster.EventsAsync(Ns, "anchored");
        Assert.Equal(2, events.Count(e => e.Reason == "MigrationFailed"));
    }

    [Fact]
    public async Task Restarting_the_source_daemon_or_the_operator_mid_migration_leaves_the_guest_running_exactly_once()
    {
        await _cluster.EnsureNamespaceAsync("vmk-system");
        var first = await _cluster.StartOperatorProcessAsync();
        await StartGuestAsync("phoenix", _a, () => first.Output);
        var daemonName = VmNames.DaemonName(Ns, "phoenix");
        var disk = VmNames.DiskName(Ns, "phoenix", "seq");
        await using var console = new Consoles(_cluster, daemonName);
        console.Follow(_a);
        console.Follow(_b);
        await console.WaitAsync(IsTick, Boot, "ticks on host A");
        await using var watch = new RunningCopies(_cluster, daemonName, _a, _b);

        // The source's daemon restarts mid-transfer (its QEMU keeps running and is re-adopted).
        await CreateMigrationAsync("bumpy", "phoenix", _b.Name, Slow);
        await WaitTransferringAsync("bumpy", () => first.Output);
        await _a.Daemon.KillAsync();
        _a = await _cluster.StartHostAsync(_a.Name);
        var m = await FinishedAsync("bumpy", () => first.Output);
        Assert.True(m.Phase is "Succeeded" or "Failed", m.Status?.ToJsonString());
        var here = await RunsOnceAsync("phoenix", console, disk, () => first.Output);

        // The operator dies mid-transfer; its successor settles the migration it finds running.
        var there = here == _a.Name ? _b : _a;
        await CreateMigrationAsync("orphaned", "phoenix", there.Name, Slow);
        await WaitTransferringAsync("orphaned", () => first.Output);
        await first.KillAsync();
        var second = await _cluster.StartOperatorProcessAsync();
        m = await FinishedAsync("orphaned", () => second.Output);
        Assert.True(m.Phase is "Succeeded" or "Failed" or "Cancelled", m.Status?.ToJsonString());
        if (m.Phase != "Succeeded")
        {
            Assert.Contains("operator restarted", CustomObject.Str(m.Status, "message"), StringComparison.Ordinal);
        }
        await RunsOnceAsync("phoenix", console, disk, () => second.Output);
        Assert.True(watch.MostAtOnce == 1, $"the guest ran on two hosts at once: {watch.Overlap}");
    }

    [Fact]
    public async Task A_third_migration_from_one_host_waits_in_the_queue_until_one_of_the_first_two_ends()
    {
        await using var op = _cluster.StartOperator();
        string[] guests = ["q1", "q2", "q3"];
        await _cluster.EnsureNamespaceAsync(Ns);
        foreach (var host in new[] { _a, _b })
        {
            await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, host.Name), h => h?.Phase == "Ready", Boot, $"host {host.Name} Ready",
                h => h?.Status?.ToJsonString() + _cluster.Describe());
        }
        foreach (var g in guests)
        {
            await _cluster.ApplyVmAsync(Ns, TestCluster.GuestManifest(g, s => s["placement"] = new JsonObject { ["host"] = _a.Name }));
        }
        foreach (var g in guests)
        {
            await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, g), v => v?.Phase == "Running" && v.AssignedHost == _a.Name, Boot, $"VM {g} Running on host A",
                v => v?.Status?.ToJsonString() + _cluster.Describe());
        }
        foreach (var g in guests)
        {
            await CreateMigrationAsync("move-" + g, g, _b.Name, Slow);
        }
        await WaitTransferringAsync("move-q1");
        await WaitTransferringAsync("move-q2");
        var queued = await GetMigrationAsync("move-q3");
        Assert.True(queued!.Phase == "Pending", queued.Status?.ToJsonString());
        Assert.Equal($"queued: 2 outgoing migrations run from host {_a.Name} (limit {VirtualMachineMigrationReconciler.PerHostLimit})", CustomObject.Str(queued.Status, "message"));
        Assert.Equal(2, QemuPidsOf(_b).Count); // two targets prepared, not three

        // The first one ends (deleted: cancelled): the queued one starts at once.
        await DeleteMigrationAsync("move-q1");
        await WaitTransferringAsync("move-q3");
        var second = await GetMigrationAsync("move-q2");
        Assert.True(second!.Phase == "Running", second.Status?.ToJsonString());
        Assert.Contains(await _cluster.EventsAsync(Ns, "move-q3"), e => e.Reason == "Queued");
        await DeleteMigrationAsync("move-q2");
        await DeleteMigrationAsync("move-q3");
        await Eventually.TrueAsync(() => QemuPidsOf(_b).Count == 0, "no target QEMU left on host B", Move);
        Assert.Equal(3, QemuPidsOf(_a).Count);
    }

    /// <summary>Host B, its migrations listening on its own loopback address (what the network cut drops).</summary>
    private Task<TestNode> StartBAsync(string name) => _cluster.StartHostAsync(name, 1, "--migration-address", _bMigration.ToString());

    private static bool IsTick(string line) => line.StartsWith("VMK-TICK ", StringComparison.Ordinal);

    /// <summary>After a failed migration: the VM is Running on host A with no migration, the same QEMU, ticking on, holding its lease.</summary>
    private async Task StaysOnSourceAsync(Consoles console, int sourcePid, string disk)
    {
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, "anchored"), v => v?.Phase == "Running" && CustomObject.At(v.Status, "migration") is null, Move,
            "VM anchored Running with no migration", v => v?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Equal(_a.Name, vm!.AssignedHost);
        Assert.Equal([sourcePid], QemuPidsOf(_a));
        var last = console.Numbers("VMK-TICK ").Max();
        await console.WaitAsync(l => IsTick(l) && Consoles.Number(l) > last + 1, Boot, "ticks on host A after the failure", _a.Name);
        Assert.Equal(_a.Name, LeaseOwner(disk));
    }

    /// <summary>
    /// The VM is Running with no migration, on the host status.host names, in exactly one QEMU (on that host), which
    /// holds the disk lease and goes on with the same tick counter (never rebooted). Returns the host.
    /// </summary>
    private async Task<string> RunsOnceAsync(string name, Consoles console, string disk, Func<string> logs)
    {
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, name), v => v?.Phase == "Running" && CustomObject.At(v.Status, "migration") is null, Move,
            $"VM {name} Running with no migration", v => v?.Status?.ToJsonString() + logs());
        var host = _cluster.Hosts[vm!.AssignedHost!];
        await Eventually.TrueAsync(() => _cluster.QemuPids().Count == 1 && QemuPidsOf(host).Count == 1, $"one QEMU of {name}, on host {host.Name}", Move);
        Assert.Equal(host.Name, LeaseOwner(disk));
        var last = console.Numbers("VMK-TICK ").Max();
        await console.WaitAsync(l => IsTick(l) && Consoles.Number(l) > last + 1, Boot, $"ticks on host {host.Name}", host.Name);
        var ticks = console.Numbers("VMK-TICK ").Distinct().Order().ToList();
        Assert.True(ticks[0] <= 5 && ticks.Zip(ticks.Skip(1), (x, y) => y - x).All(gap => gap <= 30), $"ticks: {string.Join(' ', ticks)}");
        return host.Name;
    }

    private string? LeaseOwner(string disk) => VmfsInspector.GetLocks(_datastore).SingleOrDefault(l => l.Resource == disk)?.OwnerHost;

    private async Task StartGuestAsync(string name, TestNode on, Func<string>? logs = null)
    {
        logs ??= _cluster.Describe;
        await _cluster.EnsureNamespaceAsync(Ns);
        _datastore = await _cluster.ApplyDatastoreAsync("ds1");
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "ds1"), d => CustomObject.Long(d?.Status, "mountedHosts") == 2, Boot,
            "Datastore ds1 mounted on both hosts", d => d?.Status?.ToJsonString() + logs());
        await _cluster.ApplyVmAsync(Ns, TestCluster.GuestManifest(name, s =>
        {
            s["disks"] = new JsonArray(new JsonObject { ["name"] = "seq", ["datastore"] = "ds1", ["size"] = "16Mi" });
            s["placement"] = new JsonObject { ["host"] = on.Name };
        }));
        await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, name), v => v?.Phase == "Running" && v.AssignedHost == on.Name, Boot, $"VM {name} Running on {on.Name}",
            v => v?.Status?.ToJsonString() + logs());
    }

    private async Task WaitTransferringAsync(string name, Func<string>? logs = null) =>
        await Eventually.UntilAsync(() => GetMigrationAsync(name), m => m?.Phase == "Running" && CustomObject.Long(m.Status, "progress", "transferredBytes") > 0, Move,
            $"migration {name} transferring", m => m?.Status?.ToJsonString() + (logs ?? _cluster.Describe)());

    private async Task<VirtualMachineMigration> FinishedAsync(string name, Func<string>? logs = null)
    {
        var m = (await Eventually.UntilAsync(() => GetMigrationAsync(name), m => m?.IsFinished == true, Move, $"migration {name} finished",
            m => m?.Status?.ToJsonString() + (logs ?? _cluster.Describe)()))!;
        // Which way a race went (a restarted source completes or rolls back): shown with the test's result.
        output.WriteLine($"migration {name}: {m.Phase} ({TestCluster.Condition(m, "Ready", "reason")}): {CustomObject.Str(m.Status, "message")}");
        return m;
    }

    private async Task CreateMigrationAsync(string name, string vm, string target, JsonObject policy)
    {
        using var client = _cluster.Client();
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "VirtualMachineMigration",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = new JsonObject { ["vmName"] = vm, ["targetHost"] = target, ["policy"] = policy.DeepClone() },
        }, CustomObject.Group, CustomObject.Version, Ns, VirtualMachineMigration.Plural);
    }

    private async Task DeleteMigrationAsync(string name)
    {
        using (var client = _cluster.Client())
        {
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(CustomObject.Group, CustomObject.Version, Ns, VirtualMachineMigration.Plural, name);
        }
        await Eventually.UntilAsync(() => GetMigrationAsync(name), m => m is null, Move, $"migration {name} gone", m => m?.Status?.ToJsonString() + _cluster.Describe());
    }

    private async Task<VirtualMachineMigration?> GetMigrationAsync(string name)
    {
        using var client = _cluster.Client();
        try
        {
            return await client.CustomObjects.GetNamespacedCustomObjectAsync<VirtualMachineMigration>(CustomObject.Group, CustomObject.Version, Ns, VirtualMachineMigration.Plural, name);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>QEMU processes started by one host's daemon (its state directory is on their command line).</summary>
    private List<int> QemuPidsOf(TestNode node) =>
        [.. _cluster.QemuPids().Where(pid => Cmdline(pid).Contains(node.StateDirectory + "/", StringComparison.Ordinal))];

    private static string Cmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>
    /// Samples, as fast as the daemons answer, on how many hosts the guest is Running (a paused migration target
    /// is not running it); a daemon that is down is skipped. Records the most seen at once.
    /// </summary>
    private sealed class RunningCopies : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public RunningCopies(TestCluster cluster, string vm, params TestNode[] nodes) => _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var running = new List<string>();
                foreach (var name in nodes.Select(n => n.Name))
                {
                    try
                    {
                        var got = await cluster.Vms(cluster.Hosts[name]).GetAsync(new VmRef { Name = vm }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: _stop.Token);
                        if (got.Status.State == VmState.Running)
                        {
                            running.Add($"{name} (pid {got.Status.QemuPid})");
                        }
                    }
                    catch (RpcException)
                    {
                    }
                }
                if (running.Count > MostAtOnce)
                {
                    MostAtOnce = running.Count;
                    Overlap = string.Join(", ", running);
                }
                // A sampling interval, not a synchronisation: it only spares the CPU while a daemon is down.
                await Task.Delay(50).ConfigureAwait(false);
            }
        });

        public int MostAtOnce { get; private set; }

        public string Overlap { get; private set; } = "";

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop.WaitAsync(TimeSpan.FromSeconds(30));
            _stop.Dispose();
        }
    }
}
