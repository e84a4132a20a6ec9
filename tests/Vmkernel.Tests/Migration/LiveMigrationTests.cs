using System.Diagnostics;
using Vmk.Vmkernel.Migration;
using Vmk.Vmkernel.Tests.Vm;
using Vmk.Vmkernel.Vm;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Migration;

/// <summary>
/// vMotion between two VMkernels (two state directories, one VMFS datastore file both mount, one TCG guest that
/// ticks every second and writes a sequence number to its VMFS disk): the guest moves and keeps going, the disk
/// lease moves with it, and at no moment can the host it left still write the disk.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class LiveMigrationTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private const string Vm = "mover";
    private readonly VmHostFixture _a = new();
    private readonly VmHostFixture _b = new();
    private VmkernelHost _hostA = null!;
    private VmkernelHost _hostB = null!;
    private string _device = null!;

    private static MigrationPolicy Tls => new() { DowntimeLimit = TimeSpan.FromMilliseconds(300) };

    public async Task InitializeAsync()
    {
        _device = Path.Combine(_a.StateDirectory, "shared-lun.img");
        await using (var f = File.Create(_device))
        {
            f.SetLength(256L << 20);
        }
        var tls = TestMigrationCertificates.Write(Path.Combine(_a.StateDirectory, "tls-source"));
        _hostA = await _a.OpenAsync(o => o with { HostName = "esx-a", MigrationTls = tls });
        _hostB = await _b.OpenAsync(o => o with { HostName = "esx-b", MigrationTls = tls });
        _hostA.Storage.Mount("ds1", _device, formatIfBlank: true).Datastore.CreateDisk("seq", 64L << 20, thin: true);
        _hostB.Storage.Mount("ds1", _device);
    }

    public async Task DisposeAsync()
    {
        await _hostA.DisposeAsync();
        await _hostB.DisposeAsync();
        await _b.DisposeAsync();
        await _a.DisposeAsync();
    }

    [Fact]
    public async Task The_guest_moves_back_and_forth_five_times_and_keeps_ticking_and_writing_its_disk()
    {
        var vm = await BootAsync();
        var hosts = new[] { (_hostA, _a), (_hostB, _b) };
        var version = Lease().Version;
        for (var round = 0; round < 5; round++)
        {
            var (source, sourceFixture) = hosts[round % 2];
            var (target, _) = hosts[(round + 1) % 2];
            var recorder = new ConsoleRecorder(vm);

            var (result, moved) = await MigrateAsync(source, target, $"round-{round}", Tls);

            // The source: QEMU gone, the VM's definition gone, its console ended where the target goes on.
            Assert.Empty(sourceFixture.QemuPids());
            Assert.Null(source.Find(Vm));
            Assert.Equal(VmState.Running, moved.State);
            Assert.Null(moved.Migration);
            var lastTick = recorder.Numbers("VMK-TICK").Max();
            var lastSeq = recorder.Numbers("VMK-DISK-SEQ").DefaultIfEmpty(0).Max();
            var firstTick = int.Parse((await LineAsync(moved, "VMK-TICK ", _ => true))[9..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(firstTick, lastTick, lastTick + 2);
            var nextSeq = await LineAsync(moved, "VMK-DISK-SEQ ", n => n > lastSeq);
            Assert.NotNull(nextSeq);

            // The lease followed the VM: the target owns it, under a new generation.
            var lease = Lease();
            Assert.Equal(target.Options.HostName, lease.OwnerHost);
            Assert.Equal(LeaseMode.Exclusive, lease.Mode);
            Assert.True(lease.Version > version, $"lease version {lease.Version} after {version}");
            version = lease.Version;
            Assert.Equal("completed", result.Final.Phase);
            Assert.True(result.Final.Downtime is { } d && d < TimeSpan.FromSeconds(2), $"downtime {result.Final.Downtime}");
            vm = moved;
        }
        await vm.StopAsync();
    }

    [Fact]
    public async Task No_write_from_the_source_reaches_the_disk_after_the_target_took_the_lease()
    {
        var vm = await BootAsync();
        var offset = (64L << 20) - 4096; // beyond the guest's sector 0: only this test writes here
        // A real NBD client connected to the source's export before the migration, as the source QEMU is.
        await using var sourceClient = new InteractiveQemuIo(_hostA.Storage.NbdSocket, $"{Vm}/root");
        Assert.StartsWith("wrote ", await sourceClient.RunAsync($"write -P 0x11 {offset} 4096"));

        var (_, moved) = await MigrateAsync(_hostA, _hostB, "no-stale-writes", Tls);
        Assert.Equal("esx-b", Lease().OwnerHost);

        var late = await sourceClient.RunAsync($"write -P 0xab {offset} 4096");
        Assert.DoesNotContain("wrote", late, StringComparison.Ordinal);
        // What the disk holds, read through the target's export under the target's lease: the source's write is not there.
        await using var targetClient = new InteractiveQemuIo(_hostB.Storage.NbdSocket, $"{Vm}/root");
        Assert.StartsWith("read ", await targetClient.RunAsync($"read -P 0x11 {offset} 4096"));
        await LineAsync(moved, "VMK-TICK ", _ => true);
        await moved.StopAsync();
    }

    [Fact]
    public async Task The_target_resumes_the_guest_as_soon_as_the_source_let_it_go_and_a_late_cancel_there_leaves_it_running()
    {
        var vm = await BootAsync();
        var incoming = await _hostB.Migrations.PrepareIncomingAsync("on-its-own", vm.Spec, Tls);
        var arrived = _hostB.Get(Vm);
        // Before any of the stream arrives, the target holds none of the guest's memory: its pages are faulted in as they come.
        var resident = ResidentBytes(arrived.Pid!.Value);
        Assert.True(resident < vm.Spec.MemoryBytes / 2, $"target QEMU resident {resident >> 20} MiB of a {vm.Spec.MemoryBytes >> 20} MiB guest before the stream");
        using var timeout = new CancellationTokenSource(Boot);
        var running = arrived.WaitForStateAsync(VmState.Running, timeout.Token);

        var result = await _hostA.Migrations.MigrateOutAsync("on-its-own", Vm, incoming.Uri, Tls).WaitAsync(Boot);

        // No FinishIncoming yet: the target took the leases the source released and resumed the guest by itself.
        var resumed = await running;
        Assert.Equal("esx-b", Lease().OwnerHost);
        // The pause, from the source's STOP to the target's resume (one clock here), covers QEMU's own stop-and-copy.
        Assert.NotNull(result.Final.PausedAt);
        var pause = resumed.Since - result.Final.PausedAt!.Value;
        Assert.True(pause >= result.Final.Downtime!.Value - TimeSpan.FromMilliseconds(1), $"pause {pause.TotalMilliseconds} ms, QEMU's downtime {result.Final.Downtime.Value.TotalMilliseconds} ms");
        Assert.True(pause < TimeSpan.FromSeconds(5), $"pause {pause.TotalMilliseconds} ms");

        // The operator cancelling now (it lost the source's stream, say) must not kill the only copy of the guest.
        Assert.False(await _hostB.Migrations.CancelAsync("on-its-own"));
        Assert.Equal(VmState.Running, arrived.State);
        var lastTick = ConsoleRecorder.Parse(System.Text.Encoding.UTF8.GetString(arrived.Console!.Snapshot()), "VMK-TICK").DefaultIfEmpty(0).Max();
        await LineAsync(arrived, "VMK-TICK ", n => n > lastTick);
        Assert.DoesNotContain("on-its-own", _hostB.Migrations.InProgress.Keys);
        await arrived.StopAsync();
    }

    [Fact]
    public async Task Cancel_leaves_the_guest_running_on_the_source_removes_the_target_and_the_next_migration_runs_at_full_speed()
    {
        var vm = await BootAsync();
        var before = Lease();
        // 1 MiB/s: a 256 MiB guest takes long enough to be caught in the middle.
        var slow = Tls with { BandwidthBytesPerSecond = 1 << 20 };
        var incoming = await _hostB.Migrations.PrepareIncomingAsync("to-cancel", vm.Spec, slow);
        Assert.Equal(VmState.Paused, _hostB.Get(Vm).State);
        Assert.Equal("incoming:to-cancel", _hostB.Get(Vm).Migration);
        var started = new TaskCompletionSource();
        var progress = new SyncProgress(p => { if (p.TransferredBytes > 0) started.TrySetResult(); });
        var migrate = _hostA.Migrations.MigrateOutAsync("to-cancel", Vm, incoming.Uri, slow, progress);
        await started.Task.WaitAsync(Boot);
        Assert.Equal("outgoing:to-cancel", vm.Migration);

        Assert.True(await _hostA.Migrations.CancelAsync("to-cancel", "cancelled by the test"));
        Assert.True(await _hostB.Migrations.CancelAsync("to-cancel"));

        var e = await Assert.ThrowsAsync<MigrationException>(() => migrate);
        Assert.Contains("cancelled by the test", e.Message, StringComparison.Ordinal);
        Assert.Contains("goes on running on esx-a", e.Message, StringComparison.Ordinal);
        await AssertStillRunsOnA(vm, before);

        // The next migration of this QEMU, with no bandwidth in its policy, is not held to the cancelled one's 1 MiB/s.
        var (again, moved) = await MigrateAsync(_hostA, _hostB, "after-cancel", Tls);
        var rate = again.Final.TransferredBytes / again.Final.TotalTime.TotalSeconds;
        Assert.True(rate > 4 << 20, $"{again.Final.TransferredBytes} bytes in {again.Final.TotalTime.TotalMilliseconds} ms: still throttled");
        await LineAsync(moved, "VMK-TICK ", _ => true);
        await moved.StopAsync();
    }

    [Fact]
    public async Task A_target_killed_mid_migration_fails_it_with_the_reason_and_the_source_runs_on()
    {
        var vm = await BootAsync();
        var before = Lease();
        var slow = Tls with { BandwidthBytesPerSecond = 1 << 20 };
        var incoming = await _hostB.Migrations.PrepareIncomingAsync("target-dies", vm.Spec, slow);
        var started = new TaskCompletionSource();
        var progress = new SyncProgress(p => { if (p.TransferredBytes > 0) started.TrySetResult(); });
        var migrate = _hostA.Migrations.MigrateOutAsync("target-dies", Vm, incoming.Uri, slow, progress);
        await started.Task.WaitAsync(Boot);

        var targetPid = Assert.Single(_b.QemuPids());
        using (var target = Process.GetProcessById(targetPid))
        {
            target.Kill();
        }

        var e = await Assert.ThrowsAsync<MigrationException>(() => migrate.WaitAsync(Boot));
        Assert.Contains("failed", e.Message, StringComparison.Ordinal);
        Assert.Contains("goes on running on esx-a", e.Message, StringComparison.Ordinal);
        await _hostB.Migrations.CancelAsync("target-dies");
        await AssertStillRunsOnA(vm, before);
    }

    [Fact]
    public async Task Tls_cannot_be_asked_of_a_host_without_certificates()
    {
        await using var fixture = new VmHostFixture();
        await using var plain = await fixture.OpenAsync(o => o with { HostName = "esx-c" });
        var e = await Assert.ThrowsAsync<MigrationException>(() =>
            plain.Migrations.PrepareIncomingAsync("m1", TestGuest.Spec("x"), new MigrationPolicy()));
        Assert.Contains("no migration TLS credentials", e.Message, StringComparison.Ordinal);
        Assert.Empty(plain.VirtualMachines);
    }

    private async Task AssertStillRunsOnA(VirtualMachine vm, LockInfo before)
    {
        Assert.Equal(VmState.Running, vm.State);
        Assert.Null(vm.Migration);
        Assert.Empty(_b.QemuPids());
        Assert.Null(_hostB.Find(Vm));
        var lastTick = ConsoleRecorder.Parse(System.Text.Encoding.UTF8.GetString(vm.Console!.Snapshot()), "VMK-TICK").Max();
        await LineAsync(vm, "VMK-TICK ", n => n > lastTick + 1);
        var after = Lease();
        Assert.Equal("esx-a", after.OwnerHost);
        Assert.Equal(before.Version, after.Version);
    }

    private async Task<VirtualMachine> BootAsync()
    {
        var vm = await _hostA.DefineAsync(TestGuest.Spec(Vm, s => s with
        {
            Disks = [new DiskSpec { Name = "root", Datastore = "ds1", DatastoreDisk = "seq" }],
        }));
        await vm.StartAsync();
        await LineAsync(vm, "VMK-DISK-SEQ ", n => n >= 2);
        return vm;
    }

    /// <summary>The protocol as the operator drives it: prepare the target, migrate out, finish on the target.</summary>
    private static async Task<(MigrationResult Result, VirtualMachine Vm)> MigrateAsync(VmkernelHost source, VmkernelHost target, string id, MigrationPolicy policy)
    {
        var vm = source.Get(Vm);
        var incoming = await target.Migrations.PrepareIncomingAsync(id, vm.Spec, policy);
        MigrationResult result;
        try
        {
            result = await source.Migrations.MigrateOutAsync(id, Vm, incoming.Uri, policy).WaitAsync(Boot);
        }
        catch
        {
            await target.Migrations.CancelAsync(id);
            throw;
        }
        var moved = await target.Migrations.FinishIncomingAsync(id);
        return (result, moved);
    }

    private LockInfo Lease() => Assert.Single(_hostA.Storage.GetDatastore("ds1").Datastore.GetLocks(), l => l.Resource == "seq");

    private static async Task<string> LineAsync(VirtualMachine vm, string prefix, Func<int, bool> match)
    {
        using var timeout = new CancellationTokenSource(Boot);
        try
        {
            return await vm.Console!.WaitForLineAsync(
                l => l.StartsWith(prefix, StringComparison.Ordinal)
                    && int.TryParse(l[prefix.Length..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && match(n),
                timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            // What the guest printed last (a kernel oops, say) tells a stuck guest from a lost console.
            var console = System.Text.Encoding.UTF8.GetString(vm.Console!.Snapshot());
            throw new TimeoutException($"VM {vm.Name} ({vm.State}) printed no matching '{prefix}' line within {Boot.TotalSeconds:0} s; its console ends with:\n{console[Math.Max(0, console.Length - 3000)..]}");
        }
    }

    /// <summary>IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool, out of order).</summary>
    private sealed class SyncProgress(Action<MigrationProgress> report) : IProgress<MigrationProgress>
    {
        public void Report(MigrationProgress value) => report(value);
    }

    private static long ResidentBytes(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
}
