using System.Globalization;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>
/// Restarting vmkerneld never stops a VM: after a crash (SIGKILL) or an orderly stop, the next vmkerneld re-adopts
/// the VMs and the API shows them unchanged; the guest's disk, served by the daemon's NBD server, carries on.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class RestartTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private readonly TestHost _host = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private static int Seq(string line) => int.Parse(line["VMK-DISK-SEQ ".Length..], CultureInfo.InvariantCulture);

    private static bool IsSeq(string line) => line.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal);

    [Fact]
    public async Task Vms_survive_a_crash_and_an_orderly_restart_of_the_daemon_unchanged()
    {
        var first = await _host.StartDaemonAsync();
        Vm survivorBefore, pausedBefore;
        int lastSeq;
        using (var client = _host.Connect(first))
        {
            var device = Path.Combine(_host.DatastoreDirectory, "lun.img");
            await using (var f = File.Create(device))
            {
                f.SetLength(256L << 20);
            }
            await client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device, FormatIfBlank = true });
            await client.Datastores.CreateDiskAsync(new CreateDiskRequest { Datastore = "ds1", Name = "seq", SizeBytes = 64L << 20 });
            await client.Vms.DefineAsync(new DefineVmRequest
            {
                Spec = TestGuest.Spec("survivor", s => s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "seq" })),
            });
            await client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("napper") });
            await client.Vms.StartAsync(new VmRef { Name = "survivor" });
            await client.Vms.StartAsync(new VmRef { Name = "napper" });
            await client.Vms.PauseAsync(new VmRef { Name = "napper" });
            using var console = await ConsoleReader.AttachAsync(client, "survivor", replayHistory: true);
            lastSeq = Seq(await console.WaitForLineAsync(l => IsSeq(l) && Seq(l) >= 2, Boot));
            survivorBefore = await client.Vms.GetAsync(new VmRef { Name = "survivor" });
            pausedBefore = await client.Vms.GetAsync(new VmRef { Name = "napper" });
        }
        var pids = _host.QemuPids();

        await first.KillAsync(); // a crash: no cleanup at all

        Assert.All(pids, pid => Assert.True(TestHost.IsAlive(pid), $"QEMU {pid} died with the daemon"));
        var second = await _host.StartDaemonAsync();
        using (var client = _host.Connect(second))
        {
            await AssertUnchangedAsync(client, survivorBefore, pausedBefore);
            Assert.True((await client.Datastores.GetAsync(new DatastoreRef { Name = "ds1" })).Mounted);
            using var console = await ConsoleReader.AttachAsync(client, "survivor", replayHistory: false);
            // The guest's disk writes go on through the new daemon's NBD server.
            lastSeq = Seq(await console.WaitForLineAsync(l => IsSeq(l) && Seq(l) > lastSeq, Boot));
        }

        await second.StopAsync(); // an orderly stop (upgrade): SIGTERM

        Assert.Equal(0, second.ExitCode);
        Assert.All(pids, pid => Assert.True(TestHost.IsAlive(pid), $"QEMU {pid} died with the daemon"));
        var third = await _host.StartDaemonAsync();
        using (var client = _host.Connect(third))
        {
            await AssertUnchangedAsync(client, survivorBefore, pausedBefore);
            using (var console = await ConsoleReader.AttachAsync(client, "survivor", replayHistory: false))
            {
                await console.WaitForLineAsync(l => IsSeq(l) && Seq(l) > lastSeq, Boot);
            }
            await client.Vms.StopAsync(new VmRef { Name = "survivor" });
            await client.Vms.StopAsync(new VmRef { Name = "napper" });
        }
        Assert.Empty(_host.QemuPids());
    }

    private static async Task AssertUnchangedAsync(DaemonClient client, Vm survivorBefore, Vm pausedBefore)
    {
        var survivor = await client.Vms.GetAsync(new VmRef { Name = "survivor" });
        var napper = await client.Vms.GetAsync(new VmRef { Name = "napper" });
        Assert.Equal(VmState.Running, survivor.Status.State);
        Assert.Equal(survivorBefore.Status.QemuPid, survivor.Status.QemuPid);
        Assert.Equal(survivorBefore.Spec, survivor.Spec);
        Assert.Equal(VmState.Paused, napper.Status.State);
        Assert.Equal(pausedBefore.Status.QemuPid, napper.Status.QemuPid);
        Assert.Equal(pausedBefore.Spec, napper.Spec);
        Assert.Equal("tests", napper.Spec.Owner.Namespace);
    }
}
