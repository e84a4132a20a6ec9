using k8s;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.VirtualMachines;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>
/// The product path on real parts: API server, vmkerneld processes, VMFS on a shared file, QEMU (TCG) and the
/// operator's controllers: a Datastore and a VirtualMachine applied become a mounted datastore and a running guest.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class VirtualMachineLifecycleTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(150);
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(60);
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync();

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_vm_with_a_disk_runs_on_a_host_shows_its_console_and_deletion_removes_qemu_and_disks()
    {
        var node = await _cluster.StartHostAsync("h1-" + Guid.NewGuid().ToString("N")[..4]);
        await using var op = _cluster.StartOperator();
        const string ns = "apps";
        await _cluster.EnsureNamespaceAsync(ns);
        var device = await _cluster.ApplyDatastoreAsync("ds1");

        var ds = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "ds1"),
            d => TestCluster.Condition(d, "Ready", "status") == "True", Quick, "Datastore ds1 Ready", d => d?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Equal(512L << 20, new FileInfo(device).Length); // created at spec.device.size
        Assert.Equal(1, CustomObject.Long(ds!.Status, "mountedHosts"));
        Assert.True(long.Parse(CustomObject.Str(ds.Status, "free")!, System.Globalization.CultureInfo.InvariantCulture) > 0);

        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("web", s => s["disks"] = new System.Text.Json.Nodes.JsonArray(
            new System.Text.Json.Nodes.JsonObject { ["name"] = "data", ["datastore"] = "ds1", ["size"] = "64Mi" })));
        var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "web"),
            v => v?.Phase == "Running" && TestCluster.Condition(v, "Ready", "status") == "True", Boot, "VM web Running", v => v?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Equal(node.Name, vm!.AssignedHost);
        Assert.Equal(vm.Metadata.Generation, CustomObject.Long(vm.Status, "observedGeneration"));
        Assert.Equal("tcg", CustomObject.Str(vm.Status, "accelerator"));
        var daemonName = VmNames.DaemonName(ns, "web");
        Assert.Equal($"{node.Name}/{daemonName}", CustomObject.Str(vm.Status, "console", "serial"));

        var vms = _cluster.Vms(node);
        var up = await ConsoleReader.WaitForLineAsync(vms, daemonName, "VMK-GUEST-UP", Boot);
        Assert.Contains("VMK-GUEST-UP", up, StringComparison.Ordinal);
        var disks = await _cluster.Datastores(node).ListDisksAsync(new DatastoreRef { Name = "ds1" });
        Assert.Equal([VmNames.DiskName(ns, "web", "data")], disks.Disks.Select(d => d.Name));
        Assert.Single(_cluster.QemuPids());

        var events = await _cluster.EventsAsync(ns, "web");
        Assert.Contains(events, e => e.Reason == "Scheduled");
        Assert.Contains(events, e => e.Reason == "Started");
        var metrics = await op.ScrapeAsync();
        Assert.Contains("vmkernel_virtualmachines{phase=\"Running\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"vmkernel_host_heartbeat_age_seconds{{host=\"{node.Name}\"}}", metrics, StringComparison.Ordinal);

        // Idle: the guest runs and nothing changes, so nothing is reconciled (no periodic resync of VMs).
        Assert.Equal(0, await ReconcilesDuringAsync(op, TimeSpan.FromSeconds(5)));

        // The guest powers off underneath (QEMU killed): runPolicy Always starts it again.
        var pid = _cluster.QemuPids().Single();
        System.Diagnostics.Process.GetProcessById(pid).Kill();
        vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "web"),
            v => v?.Phase == "Running" && CustomObject.Long(v.Status, "restartCount") == 1 && _cluster.QemuPids().Any(p => p != pid), Boot,
            "VM web restarted after its QEMU died", v => v?.Status?.ToJsonString() + _cluster.Describe());

        // Power change through the spec: Halted powers it off and keeps it off, quietly.
        using (var client = _cluster.Client())
        {
            await client.CustomObjects.PatchNamespacedCustomObjectAsync(new k8s.Models.V1Patch("{\"spec\":{\"runPolicy\":\"Halted\"}}", k8s.Models.V1Patch.PatchType.MergePatch),
                "vmkernel.io", "v1alpha1", ns, "virtualmachines", "web");
        }
        vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "web"),
            v => v?.Phase == "Stopped" && TestCluster.Condition(v, "Ready", "status") == "True", Boot, "VM web Stopped by runPolicy Halted", v => v?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Empty(_cluster.QemuPids());
        Assert.Equal(0, await ReconcilesDuringAsync(op, TimeSpan.FromSeconds(5)));

        using (var client = _cluster.Client())
        {
            await client.CustomObjects.DeleteNamespacedCustomObjectAsync("vmkernel.io", "v1alpha1", ns, "virtualmachines", "web");
        }
        await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "web"), v => v is null, Quick, "VM web gone", v => v?.Status?.ToJsonString() + _cluster.Describe());
        Assert.Empty(_cluster.QemuPids());
        Assert.Empty((await vms.ListAsync(new ListVmsRequest())).Vms);
        Assert.Empty((await _cluster.Datastores(node).ListDisksAsync(new DatastoreRef { Name = "ds1" })).Disks);
    }

    /// <summary>Reconciles of VirtualMachines during a window in which nothing changes: measuring an absence, not waiting for something.</summary>
    private static async Task<int> ReconcilesDuringAsync(InProcessOperator op, TimeSpan window)
    {
        var count = 0;
        void OnReconciled(Runtime.Informer.ObjectKey key, Runtime.Reconcile.ReconcileResult? result, Exception? error) => Interlocked.Increment(ref count);
        // Let reconciles already queued by the last change finish first: the queue drains and the last reconcile in
        // flight ends (it may still be running after the status a client saw was written), then the window starts.
        var controller = op.Controllers.VirtualMachines;
        await Eventually.TrueAsync(() => controller.QueueLength == 0 && controller.InFlight == 0, "the VM queue to drain");
        controller.Reconciled += OnReconciled;
        await Task.Delay(window);
        controller.Reconciled -= OnReconciled;
        return count;
    }

    [Fact]
    public async Task Unsatisfiable_manifests_end_in_Ready_False_with_a_reason_and_the_operator_keeps_serving()
    {
        var node = await _cluster.StartHostAsync("h1-" + Guid.NewGuid().ToString("N")[..4]);
        await using var op = _cluster.StartOperator();
        const string ns = "bad";
        await _cluster.EnsureNamespaceAsync(ns);
        await _cluster.ApplyDatastoreAsync("ds1", "256Mi");
        // A device holding something else: never formatted, refused by the daemon.
        var junk = Path.Combine(_cluster.DatastoreDirectory, "junk.img");
        await File.WriteAllBytesAsync(junk, [.. Enumerable.Range(0, 2 << 20).Select(i => (byte)(i * 7 + 1))]);
        await _cluster.ApplyDatastoreAsync("junk", "2Mi", junk);

        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("no-datastore", s => s["disks"] = new System.Text.Json.Nodes.JsonArray(
            new System.Text.Json.Nodes.JsonObject { ["name"] = "d", ["datastore"] = "nope", ["size"] = "16Mi" })));
        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("no-portgroup", s => s["nics"] = new System.Text.Json.Nodes.JsonArray(
            new System.Text.Json.Nodes.JsonObject { ["name"] = "eth0", ["portGroup"] = "nope" })));
        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("too-big", s => s["memory"] = new System.Text.Json.Nodes.JsonObject { ["size"] = "256Mi", ["reservation"] = "4000Gi" }));
        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("no-kernel", s => s["boot"]!["kernel"] = Path.Combine(TestGuest.Directory, "no-such-vmlinux")));
        await _cluster.ApplyVmAsync(ns, TestCluster.GuestManifest("halted", s => s["runPolicy"] = "Halted"));

        async Task<VirtualMachine> Expect(string name, string reason, string inMessage)
        {
            var vm = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, name),
                v => TestCluster.Condition(v, "Ready", "reason") == reason && TestCluster.Condition(v, "Ready", "message").Contains(inMessage, StringComparison.Ordinal), Quick, $"{name}: Ready=False {reason}", v => v?.Status?.ToJsonString() + _cluster.Describe());
            Assert.Equal("False", TestCluster.Condition(vm, "Ready", "status"));
            Assert.Contains(inMessage, TestCluster.Condition(vm, "Ready", "message"), StringComparison.Ordinal);
            return vm!;
        }

        await Expect("no-datastore", "DatastoreNotFound", "spec.disks[0].datastore");
        await Expect("no-portgroup", "PortGroupNotFound", "spec.nics[0].portGroup");
        await Expect("too-big", "Unschedulable", node.Name + ": memory reservation 4096000Mi does not fit");
        var noKernel = await Expect("no-kernel", "DefineFailed", "no-such-vmlinux");
        Assert.Equal(node.Name, noKernel.AssignedHost);
        var halted = await Eventually.UntilAsync(() => _cluster.GetVmAsync(ns, "halted"),
            v => v?.Phase == "Stopped" && TestCluster.Condition(v, "Ready", "status") == "True", Quick, "halted VM Stopped and Ready");
        Assert.Null(halted!.AssignedHost);
        var bad = await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "junk"),
            d => TestCluster.Condition(d, "Ready", "reason") == "MountFailed", Quick, "Datastore junk MountFailed", d => d?.Status?.ToJsonString());
        Assert.Contains(node.Name, TestCluster.Condition(bad, "Ready", "message"), StringComparison.Ordinal);
        // The good datastore is served all the same (its mount may finish after the bad one's refusal).
        await Eventually.UntilAsync(() => _cluster.GetClusterAsync<Datastore>(Datastore.Plural, "ds1"),
            d => TestCluster.Condition(d, "Ready", "status") == "True", Quick, "Datastore ds1 Ready", d => d?.Status?.ToJsonString());
        Assert.Empty(_cluster.QemuPids());
        var warnings = await _cluster.EventsAsync(ns, "too-big");
        Assert.Contains(warnings, e => e.Type == "Warning" && e.Reason == "Unschedulable");
    }
}
