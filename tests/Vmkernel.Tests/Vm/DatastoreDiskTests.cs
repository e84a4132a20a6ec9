using Vmk.Vmkernel.Vm;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vm;

/// <summary>
/// The storage I/O stack end to end: a guest's disk is a VMFS virtual disk served by the VMkernel's NBD server,
/// opened under this host's exclusive lease, and no second host can open it while the VM runs.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class DatastoreDiskTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private readonly VmHostFixture _fixture = new();
    private readonly VmHostFixture _otherHost = new();
    private string _device = null!;
    private VmkernelHost _host = null!;

    public async Task InitializeAsync()
    {
        _device = Path.Combine(_fixture.StateDirectory, "shared-lun.img");
        await using (var f = File.Create(_device))
        {
            f.SetLength(256L << 20);
        }
        _host = await _fixture.OpenAsync(o => o with { HostName = "esx-a" });
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _otherHost.DisposeAsync();
        await _fixture.DisposeAsync();
    }

    private static DiskSpec SeqDisk => new() { Name = "root", Datastore = "ds1", DatastoreDisk = "seq" };

    private static Task<string> SeqLineAsync(VirtualMachine vm, int atLeast) =>
        vm.Console!.WaitForLineAsync(
            l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal) && int.Parse(l[13..], System.Globalization.CultureInfo.InvariantCulture) >= atLeast,
            new CancellationTokenSource(Boot).Token);

    [Fact]
    public async Task The_guest_writes_its_sequence_to_a_vmfs_disk_under_this_hosts_lease()
    {
        var mount = _host.Storage.Mount("ds1", _device, formatIfBlank: true);
        mount.Datastore.CreateDisk("seq", 64L << 20, thin: true);
        var vm = await _host.DefineAsync(TestGuest.Spec("seq", s => s with { Disks = [SeqDisk] }));

        await vm.StartAsync();
        await SeqLineAsync(vm, 3);

        var lease = Assert.Single(mount.Datastore.GetLocks(), l => l.Resource == "seq");
        Assert.Equal(LeaseMode.Exclusive, lease.Mode);
        Assert.Equal("esx-a", lease.OwnerHost);
        var export = Assert.Single(_host.Storage.Nbd.GetStatistics(), e => e.Name == "seq/root");
        Assert.True(export.Write.Operations >= 3, $"the NBD export saw {export.Write.Operations} writes");

        await vm.StopAsync();
        Assert.DoesNotContain(mount.Datastore.GetLocks(), l => l.Resource == "seq" && l.Mode != LeaseMode.Free);
        Assert.Empty(_host.Storage.Nbd.GetStatistics());

        // The sequence lives on the datastore: the next boot goes on from where the last one stopped.
        var last = (await File.ReadAllTextAsync(vm.Paths.ConsoleLog)).Split('\n')
            .Where(l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal)).Select(l => int.Parse(l[13..].Trim(), System.Globalization.CultureInfo.InvariantCulture)).Max();
        await vm.StartAsync();
        var resumed = await vm.Console!.WaitForLineAsync(l => l.StartsWith("VMK-DISK-SEQ ", StringComparison.Ordinal), new CancellationTokenSource(Boot).Token);
        Assert.True(int.Parse(resumed[13..], System.Globalization.CultureInfo.InvariantCulture) > last, $"after {last} the guest wrote {resumed}");
        await vm.StopAsync();
    }

    [Fact]
    public async Task A_second_host_cannot_start_a_vm_on_a_disk_the_first_host_is_writing()
    {
        var mount = _host.Storage.Mount("ds1", _device, formatIfBlank: true);
        mount.Datastore.CreateDisk("seq", 64L << 20, thin: true);
        var vm = await _host.DefineAsync(TestGuest.Spec("seq", s => s with { Disks = [SeqDisk] }));
        await vm.StartAsync();
        await SeqLineAsync(vm, 1);

        await using var other = await _otherHost.OpenAsync(o => o with { HostName = "esx-b", DiskLeaseWait = TimeSpan.Zero });
        other.Storage.Mount("ds1", _device);
        var twin = await other.DefineAsync(TestGuest.Spec("seq", s => s with { Disks = [SeqDisk] }));

        var e = await Assert.ThrowsAsync<VmkernelException>(() => twin.StartAsync());

        Assert.Contains("esx-a", e.Message, StringComparison.Ordinal);
        Assert.Equal(VmState.Failed, twin.State);
        Assert.Empty(_otherHost.QemuPids());
        Assert.Equal(VmState.Running, vm.State);
        await SeqLineAsync(vm, 2); // the first host's guest goes on writing
        await vm.StopAsync();
    }

    [Fact]
    public async Task A_vm_whose_disk_another_host_took_while_its_daemon_was_down_is_failed_and_says_why()
    {
        _host.Storage.Mount("ds1", _device, formatIfBlank: true).Datastore.CreateDisk("seq", 64L << 20, thin: true);
        var vm = await _host.DefineAsync(TestGuest.Spec("seq", s => s with { Disks = [SeqDisk] }));
        await vm.StartAsync();
        await SeqLineAsync(vm, 1);
        var pid = vm.Pid!.Value;

        // The daemon goes (its QEMU runs on) and, as HA would, another host takes the disk meanwhile.
        await _host.DisposeAsync();
        using (var other = VmfsDatastore.Open(_device, "esx-b"))
        using (other.OpenDisk("seq"))
        {
            _host = await _fixture.OpenAsync(o => o with { HostName = "esx-a" });
            var adopted = _host.Get("seq");

            Assert.Equal(VmState.Failed, adopted.State);
            Assert.Contains("cannot be served again", adopted.Status.Reason, StringComparison.Ordinal);
            Assert.Contains("esx-b", adopted.Status.Reason, StringComparison.Ordinal);
            Assert.Contains($"vmctl vm kill {adopted.Name}", adopted.Status.Reason, StringComparison.Ordinal);
            Assert.Equal([pid], _fixture.QemuPids());
        }
    }

    [Fact]
    public async Task A_device_that_holds_data_is_never_formatted()
    {
        var bytes = new byte[4096];
        bytes[100] = 0x42;
        await using (var f = new FileStream(_device, FileMode.Open))
        {
            await f.WriteAsync(bytes);
        }

        var e = Assert.Throws<VmkernelException>(() => _host.Storage.Mount("ds1", _device, formatIfBlank: true));

        Assert.Contains("cannot be mounted", e.Message, StringComparison.Ordinal);
        var after = new byte[4096];
        await using (var f = new FileStream(_device, FileMode.Open))
        {
            await f.ReadExactlyAsync(after);
        }
        Assert.Equal(bytes, after);
    }
}
