using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>
/// Live migration through two real vmkerneld processes' gRPC API, as the operator drives it: PrepareIncoming on
/// the target, MigrateOut (a progress stream) on the source, FinishIncoming on the target. The two hosts share a
/// datastore file and one CA (migration TLS uses each daemon's own certificates).
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class MigrationTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private readonly TestHost _a = new();
    private readonly TestHost _b = new();
    private DaemonClient _clientA = null!;
    private DaemonClient _clientB = null!;

    public async Task InitializeAsync()
    {
        // One cluster CA: the target's server certificate and the source's client certificate must chain to it.
        foreach (var file in Directory.EnumerateFiles(_a.TlsDirectory))
        {
            File.Copy(file, Path.Combine(_b.TlsDirectory, Path.GetFileName(file)), overwrite: true);
        }
        _clientA = _a.Connect(await _a.StartDaemonAsync());
        _clientB = _b.Connect(await _b.StartDaemonAsync("--datastore-dirs", $"{_b.DatastoreDirectory}:{_a.DatastoreDirectory}"));
    }

    public async Task DisposeAsync()
    {
        _clientA.Dispose();
        _clientB.Dispose();
        await _b.DisposeAsync();
        await _a.DisposeAsync();
    }

    [Fact]
    public async Task A_guest_moves_between_two_daemons_with_its_disk_lease_and_comes_back()
    {
        var device = Path.Combine(_a.DatastoreDirectory, "shared.img");
        await using (var f = File.Create(device))
        {
            f.SetLength(256L << 20);
        }
        await _clientA.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device, FormatIfBlank = true });
        await _clientB.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device });
        await _clientA.Datastores.CreateDiskAsync(new CreateDiskRequest { Datastore = "ds1", Name = "seq", SizeBytes = 64L << 20 });
        var spec = TestGuest.Spec("traveller", s => s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "seq" }));
        await _clientA.Vms.DefineAsync(new DefineVmRequest { Spec = spec });
        await _clientA.Vms.StartAsync(new VmRef { Name = "traveller" });
        var lastSeq = await WaitSeqAsync(_clientA, 2);

        var (there, progress) = await MigrateAsync(_clientA, _clientB, "m-1", spec);

        Assert.Equal(VmState.Running, there.Status.State);
        Assert.Equal("", there.Status.Migration);
        var completed = progress[^1];
        Assert.Equal("completed", completed.Phase);
        Assert.True(completed.TransferredBytes > 0 && completed.TotalMs > 0, completed.ToString());
        Assert.Empty(_a.QemuPids());
        var gone = await Assert.ThrowsAsync<RpcException>(async () => await _clientA.Vms.GetAsync(new VmRef { Name = "traveller" }));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        Assert.Equal(1, (await _clientB.Datastores.GetAsync(new DatastoreRef { Name = "ds1" })).LeasesHeld);
        Assert.Equal(0, (await _clientA.Datastores.GetAsync(new DatastoreRef { Name = "ds1" })).LeasesHeld);
        lastSeq = await WaitSeqAsync(_clientB, lastSeq + 1);

        var (back, _) = await MigrateAsync(_clientB, _clientA, "m-2", spec);

        Assert.Equal(VmState.Running, back.Status.State);
        Assert.Empty(_b.QemuPids());
        await WaitSeqAsync(_clientA, lastSeq + 1);
        Assert.Equal(1, (await _clientA.Datastores.GetAsync(new DatastoreRef { Name = "ds1" })).LeasesHeld);
        await _clientA.Vms.StopAsync(new VmRef { Name = "traveller" });
    }

    [Fact]
    public async Task An_unknown_migration_cannot_be_finished_and_a_bad_request_is_refused()
    {
        var unknown = await Assert.ThrowsAsync<RpcException>(async () =>
            await _clientB.Migrations.FinishIncomingAsync(new FinishIncomingRequest { MigrationId = "nope", Vm = "x" }));
        var noId = await Assert.ThrowsAsync<RpcException>(async () =>
            await _clientB.Migrations.PrepareIncomingAsync(new PrepareIncomingRequest { Spec = TestGuest.Spec("x") }));
        var cancel = await _clientA.Migrations.CancelAsync(new CancelMigrationRequest { MigrationId = "nope" });

        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("not incoming on this host", unknown.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, noId.StatusCode);
        Assert.False(cancel.Found);
    }

    private static async Task<(Vm Vm, List<MigrationProgress> Progress)> MigrateAsync(DaemonClient source, DaemonClient target, string id, VmSpec spec)
    {
        var policy = new MigrationPolicy { DowntimeLimitMs = 300 };
        var prepared = await target.Migrations.PrepareIncomingAsync(new PrepareIncomingRequest { MigrationId = id, Spec = spec, Policy = policy });
        var incoming = await target.Vms.GetAsync(new VmRef { Name = spec.Name });
        Assert.Equal(VmState.Paused, incoming.Status.State);
        Assert.Equal($"incoming:{id}", incoming.Status.Migration);
        var progress = new List<MigrationProgress>();
        using (var call = source.Migrations.MigrateOut(new MigrateOutRequest { MigrationId = id, Vm = spec.Name, TargetUri = prepared.IncomingUri, Policy = policy },
            deadline: DateTime.UtcNow + Boot))
        {
            await foreach (var p in call.ResponseStream.ReadAllAsync())
            {
                progress.Add(p);
            }
        }
        var vm = await target.Migrations.FinishIncomingAsync(new FinishIncomingRequest { MigrationId = id, Vm = spec.Name });
        return (vm, progress);
    }

    private static async Task<int> WaitSeqAsync(DaemonClient client, int atLeast)
    {
        using var console = await ConsoleReader.AttachAsync(client, "traveller", replayHistory: true);
        var line = await console.WaitForLineAsync(
            l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal) && int.TryParse(l[13..], out var n) && n >= atLeast, Boot);
        return int.Parse(line[13..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
