using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Grpc.Core;
using k8s;
using k8s.Models;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Migrations;
using Vmk.Operator.Controllers.VirtualMachines;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>
/// vMotion through the operator on real parts: two vmkerneld processes sharing a VMFS datastore file, QEMU (TCG),
/// the API server and the operator's controllers. The guest prints a tick every second and writes an increasing
/// sequence number to its disk; both streams are read from whichever host runs it. The harness's daemon
/// certificates name no address, so these migrations turn TLS off (policy.encrypted: false).
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class MigrationTests : IAsyncLifetime
{
    private const string Ns = "mig";
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(180);
    private static readonly TimeSpan Move = TimeSpan.FromSeconds(180);

    private static readonly JsonObject Plain = new() { ["encrypted"] = false };
    private TestCluster _cluster = null!;
    private TestNode _a = null!;
    private TestNode _b = null!;

    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.StartAsync();
        var tag = Guid.NewGuid().ToString("N")[..4];
        _a = await _cluster.StartHostAsync("a-" + tag);
        _b = await _cluster.StartHostAsync("b-" + tag);
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_vm_moves_to_the_other_host_and_back_without_rebooting_and_its_disk_never_goes_back()
    {
        await using var op = _cluster.StartOperator();
        await StartGuestAsync("traveller", _a);
        await using var console = new Consoles(_cluster, VmNames.DaemonName(Ns, "traveller"));
        console.Follow(_a);
        await console.WaitAsync(l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal), Boot, "a disk sequence number on host A");

        var there = await MigrateAsync("to-b", "traveller", _b.Name);
        Assert.Equal(_a.Name, CustomObject.Str(there.Status, "sourceHost"));
        console.Follow(_b);
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, "traveller"), v => v?.AssignedHost == _b.Name && v.Phase == "Running", Move,
            "VM traveller Running on host B", v => v?.Status?.ToJsonString());
        Assert.Null(CustomObject.At(vm!.Status, "migration"));
        Assert.Empty(QemuPidsOf(_a));
        Assert.Single(QemuPidsOf(_b));
        var seqOnA = console.Numbers("VMK-DISK-SEQ ", _a.Name);
        await console.WaitAsync(l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal), Boot, "a disk sequence number on host B", _b.Name);

        // Back through the CLI, without a target: placement picks the only other host.
        var (exit, output) = await Run("dotnet", VmctlDll(), "migrate", "traveller", "-n", Ns, "--kubeconfig", _cluster.Api.Host.KubeconfigPath, "--no-tls");
        Assert.True(exit == 0, output + "\n" + _cluster.Describe());
        Assert.Contains("Succeeded, downtime ", output, StringComparison.Ordinal);
        console.Follow(_a);
        await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, "traveller"), v => v?.AssignedHost == _a.Name && v.Phase == "Running", Move,
            "VM traveller Running on host A again", v => v?.Status?.ToJsonString());
        Assert.Empty(QemuPidsOf(_b));
        var ticksBefore = console.Numbers("VMK-TICK ").Max();
        await console.WaitAsync(l => l.StartsWith("VMK-TICK ", StringComparison.Ordinal) && Number(l) > ticksBefore + 2, Boot, "ticks on host A after the return", _a.Name);

        // One guest all along: its tick counter never restarted and at most a few ticks went unseen at each switch-over.
        var ticks = console.Numbers("VMK-TICK ").Distinct().Order().ToList();
        var gaps = ticks.Zip(ticks.Skip(1), (x, y) => y - x).ToList();
        Assert.True(gaps.Max() <= 4, $"tick gap {gaps.Max()}: {string.Join(' ', ticks)}");
        Assert.True(ticks[0] <= 5, $"first tick {ticks[0]}");
        await console.WaitAsync(l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal) && !seqOnA.Contains(Number(l)), Boot, "a disk sequence number on host A after the return", _a.Name);
        // The disk sequence never goes back across the two handovers: A before, then B, then A again.
        var seqOnB = console.Numbers("VMK-DISK-SEQ ", _b.Name);
        var seqBack = console.Numbers("VMK-DISK-SEQ ", _a.Name).Except(seqOnA).ToList();
        Assert.NotEmpty(seqOnB);
        Assert.True(seqOnA.Max() <= seqOnB.Min() && seqOnB.Max() <= seqBack.DefaultIfEmpty(long.MaxValue).Min(), $"A {string.Join(' ', seqOnA)} | B {string.Join(' ', seqOnB)} | A {string.Join(' ', seqBack)}");

        // The counters move when the migration's task ends, a moment after the status a client sees.
        var metrics = await Eventually.UntilAsync(() => op.ScrapeAsync(), s => s.Contains("vmkernel_migration_total{result=\"succeeded\"} 2", StringComparison.Ordinal), Move,
            "two succeeded migrations counted", s => s);
        Assert.Contains("vmkernel_migration_downtime_seconds_count 2", metrics, StringComparison.Ordinal);
        Assert.Contains("vmkernel_migrations_in_progress 0", metrics, StringComparison.Ordinal);
        var events = await _cluster.EventsAsync(Ns, "traveller");
        Assert.Equal(2, events.Count(e => e.Reason == "Migrated"));

        // What an administrator sees.
        var table = await Kubectl("get", "vmim", "-n", Ns);
        Assert.Matches(@"to-b\s+traveller\s+" + _a.Name + @"\s+" + _b.Name + @"\s+Succeeded\s+100", table);
        Assert.Matches(@"traveller-migration-\S+\s+traveller\s+" + _b.Name + @"\s+" + _a.Name + @"\s+Succeeded", table);
    }

    [Fact]
    public async Task Deleting_a_running_migration_cancels_it_and_maintenance_then_empties_the_host()
    {
        await using var op = _cluster.StartOperator();
        await StartGuestAsync("stayer", _a);
        var sourcePid = QemuPidsOf(_a).Single();
        await using var console = new Consoles(_cluster, VmNames.DaemonName(Ns, "stayer"));
        console.Follow(_a);
        await console.WaitAsync(l => l.StartsWith("VMK-TICK ", StringComparison.Ordinal), Boot, "ticks on host A");

        // 1 MiB/s: the guest's few tens of MiB of non-zero memory take long enough to delete the migration mid-way.
        await CreateMigrationAsync("slow", "stayer", _b.Name, new JsonObject { ["encrypted"] = false, ["bandwidth"] = "1Mi" });
        await Eventually.UntilAsync(() => GetMigrationAsync("slow"), m => m?.Phase == "Running" && CustomObject.Long(m.Status, "progress", "transferredBytes") > 0, Move,
            "migration slow transferring", m => m?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Single(QemuPidsOf(_b)); // the paused target
        using (var client = _cluster.Client())
        {
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync(CustomObject.Group, CustomObject.Version, Ns, VirtualMachineMigration.Plural, "slow");
        }
        await Eventually.UntilAsync(() => GetMigrationAsync("slow"), m => m is null, Move, "migration slow gone", m => m?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Empty(QemuPidsOf(_b));
        Assert.Equal([sourcePid], QemuPidsOf(_a));
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, "stayer"), v => v?.Phase == "Running" && CustomObject.At(v.Status, "migration") is null, Move,
            "VM stayer Running, no migration", v => v?.Status?.ToJsonString());
        Assert.Equal(_a.Name, vm!.AssignedHost);
        var last = console.Numbers("VMK-TICK ").Max();
        await console.WaitAsync(l => l.StartsWith("VMK-TICK ", StringComparison.Ordinal) && Number(l) > last + 1, Boot, "ticks on host A after the cancel", _a.Name);
        Assert.Contains(await _cluster.EventsAsync(Ns, "stayer"), e => e.Reason == "MigrationCancelled" && e.Message.Contains("deleted", StringComparison.Ordinal));
        Assert.Contains("vmkernel_migration_total{result=\"cancelled\"} 1", await op.ScrapeAsync(), StringComparison.Ordinal);

        // Maintenance on A: the VM moves to B by itself, A reports empty and takes no new VM.
        using (var client = _cluster.Client())
        {
            var patch = new JsonObject
            {
                ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [HostMaintenance.PolicyAnnotation] = Plain.ToJsonString() } },
                ["spec"] = new JsonObject { ["maintenance"] = true },
            };
            await client.CustomObjects.PatchClusterCustomObjectAsync(new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch), CustomObject.Group, CustomObject.Version, Host.Plural, _a.Name);
        }
        console.Follow(_b);
        var host = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Host>(Host.Plural, _a.Name), h => h?.Phase == "Maintenance", Move,
            "host A in Maintenance", h => h?.Status?.ToJsonString() + _cluster.Describe());
        vm = await _cluster.GetVmAsync(Ns, "stayer");
        Assert.Equal(_b.Name, vm!.AssignedHost);
        Assert.Empty(QemuPidsOf(_a));
        Assert.Contains(await AllEventsAsync(_a.Name), e => e.Reason == "MaintenanceEntered");
        Assert.Contains(await _cluster.EventsAsync(Ns, "stayer"), e => e.Reason == "Evacuating");
        await _cluster.ApplyVmAsync(Ns, TestCluster.GuestManifest("newcomer", s => s["runPolicy"] = "Halted"));
        var (chosen, _) = op.Controllers.Placement.Choose((await _cluster.GetVmAsync(Ns, "newcomer"))!);
        Assert.Equal(_b.Name, chosen);
    }

    private async Task StartGuestAsync(string name, TestNode on)
    {
        await _cluster.EnsureNamespaceAsync(Ns);
        if (await _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "ds1") is null)
        {
            await _cluster.ApplyDatastoreAsync("ds1");
        }
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "ds1"), d => CustomObject.Long(d?.Status, "mountedHosts") == 2, Boot,
            "Datastore ds1 mounted on both hosts", d => d?.Status?.ToJsonString() + _cluster.Describe());
        await _cluster.ApplyVmAsync(Ns, TestCluster.GuestManifest(name, s =>
        {
            s["disks"] = new JsonArray(new JsonObject { ["name"] = "seq", ["datastore"] = "ds1", ["size"] = "16Mi" });
            s["placement"] = new JsonObject { ["host"] = on.Name };
        }));
        await Eventually.UntilAsync(() => _cluster.GetVmAsync(Ns, name), v => v?.Phase == "Running" && v.AssignedHost == on.Name, Boot, $"VM {name} Running on {on.Name}",
            v => v?.Status?.ToJsonString() + _cluster.Describe());
    }

    private async Task<VirtualMachineMigration> MigrateAsync(string name, string vm, string? target)
    {
        await CreateMigrationAsync(name, vm, target, Plain);
        var m = await Eventually.UntilAsync(() => GetMigrationAsync(name), m => m?.IsFinished == true, Move, $"migration {name} finished",
            m => m?.Status?.ToJsonString() + _cluster.Describe());
        Assert.True(m!.Phase == "Succeeded", m.Status?.ToJsonString());
        Assert.Equal(100, CustomObject.Long(m.Status, "progress", "percent"));
        Assert.True(CustomObject.Long(m.Status, "progress", "transferredBytes") > 0);
        Assert.Matches("^[0-9]+ms$", CustomObject.Str(m.Status, "downtime"));
        Assert.NotNull(CustomObject.Str(m.Status, "completionTime"));
        Assert.Equal(target ?? CustomObject.Str(m.Status, "targetHost"), CustomObject.Str(m.Status, "targetHost"));
        return m;
    }

    private async Task CreateMigrationAsync(string name, string vm, string? target, JsonObject policy)
    {
        var spec = new JsonObject { ["vmName"] = vm, ["policy"] = policy.DeepClone() };
        if (target is not null)
        {
            spec["targetHost"] = target;
        }
        using var client = _cluster.Client();
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "VirtualMachineMigration",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = spec,
        }, CustomObject.Group, CustomObject.Version, Ns, VirtualMachineMigration.Plural);
    }

    private async Task<VirtualMachineMigration?> GetMigrationAsync(string name)
    {
        using var client = _cluster.Client();
        try
        {
            return await client.CustomObjects.GetNamespacedCustomObjectAsync<VirtualMachineMigration>(CustomObject.Group, CustomObject.Version, Ns, VirtualMachineMigration.Plural, name);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private async Task<IReadOnlyList<Corev1Event>> AllEventsAsync(string involvedName)
    {
        using var client = _cluster.Client();
        var list = await client.CoreV1.ListEventForAllNamespacesAsync();
        return [.. list.Items.Where(e => e.InvolvedObject?.Name == involvedName)];
    }

    private async Task<string> Kubectl(params string[] args)
    {
        var (exit, output) = await Run("kubectl", ["--kubeconfig", _cluster.Api.Host.KubeconfigPath, .. args]);
        Assert.True(exit == 0, $"kubectl {string.Join(' ', args)}: {output}");
        return output;
    }

    private static async Task<(int Exit, string Output)> Run(string file, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(Move);
        try
        {
            await p.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw;
        }
        return (p.ExitCode, await output + await error);
    }

    /// <summary>vmctl from its own build output (the test project builds it without referencing it).</summary>
    private static string VmctlDll()
    {
        var configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name; // bin/<Configuration>/<tfm>
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "src", "Vmctl", "bin", configuration, "net10.0", "vmctl.dll");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new FileNotFoundException("vmctl.dll not found under src/Vmctl/bin: build src/Vmctl");
    }

    /// <summary>QEMU processes started by one host's daemon (its state directory is on their command line).</summary>
    private List<int> QemuPidsOf(TestNode node) =>
        [.. _cluster.QemuPids().Where(pid => File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Contains(node.StateDirectory + "/", StringComparison.Ordinal))];

    private static long Number(string line) => Consoles.Number(line);
}
