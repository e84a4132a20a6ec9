using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>Datastores through the API: mount (formatting a blank device when told), disks, a guest writing to one, unmount.</summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class DatastoreTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private readonly TestHost _host = new();
    private DaemonClient _client = null!;

    public async Task InitializeAsync() => _client = _host.Connect(await _host.StartDaemonAsync());

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _host.DisposeAsync();
    }

    private string NewDevice(string name, bool blank = true)
    {
        var path = Path.Combine(_host.DatastoreDirectory, name);
        using var f = File.Create(path);
        f.SetLength(256L << 20);
        if (!blank)
        {
            f.Write("not a datastore, somebody's data"u8);
        }
        return path;
    }

    [Fact]
    public async Task A_blank_device_is_formatted_and_mounted_and_a_guest_writes_to_a_disk_on_it()
    {
        var device = NewDevice("lun0.img");

        var mounted = await _client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device, FormatIfBlank = true });
        await _client.Datastores.CreateDiskAsync(new CreateDiskRequest { Datastore = "ds1", Name = "seq", SizeBytes = 64L << 20 });
        await _client.Vms.DefineAsync(new DefineVmRequest
        {
            Spec = TestGuest.Spec("writer", s => s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "seq" })),
        });
        await _client.Vms.StartAsync(new VmRef { Name = "writer" });
        using (var console = await ConsoleReader.AttachAsync(_client, "writer", replayHistory: true))
        {
            await console.WaitForLineAsync(l => l.StartsWith("VMK-DISK-SEQ 3", StringComparison.Ordinal), Boot);
        }
        var inUse = await _client.Datastores.GetAsync(new DatastoreRef { Name = "ds1" });
        var info = await _client.Host.GetInfoAsync(new GetHostInfoRequest());
        var unmountInUse = await Assert.ThrowsAsync<RpcException>(async () => await _client.Datastores.UnmountAsync(new DatastoreRef { Name = "ds1" }));

        Assert.True(mounted.Mounted);
        Assert.True(mounted.CapacityBytes > 0);
        Assert.Equal(1, inUse.LeasesHeld);
        Assert.InRange(inUse.HeartbeatAgeSeconds, 0, 10);
        Assert.Equal("ds1", Assert.Single(info.Datastores).Name);
        Assert.Equal(StatusCode.FailedPrecondition, unmountInUse.StatusCode);
        Assert.Contains("in use by VM(s) writer", unmountInUse.Status.Detail, StringComparison.Ordinal);

        await _client.Vms.StopAsync(new VmRef { Name = "writer" });
        Assert.Equal(0, (await _client.Datastores.GetAsync(new DatastoreRef { Name = "ds1" })).LeasesHeld);
        await _client.Datastores.UnmountAsync(new DatastoreRef { Name = "ds1" });
        var gone = await Assert.ThrowsAsync<RpcException>(async () => await _client.Datastores.GetAsync(new DatastoreRef { Name = "ds1" }));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        var start = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.DefineAsync(new DefineVmRequest
        {
            Spec = TestGuest.Spec("writer", s => s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "seq" })),
            AllowUpdate = true,
        }));
        Assert.Equal(StatusCode.FailedPrecondition, start.StatusCode);
        Assert.Contains("datastore 'ds1' is not mounted", start.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_device_holding_other_data_is_never_formatted()
    {
        var device = NewDevice("someones-data.img", blank: false);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds2", DevicePath = device, FormatIfBlank = true }));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("cannot be mounted", e.Status.Detail, StringComparison.Ordinal);
        using var f = File.OpenRead(device);
        var head = new byte[32];
        f.ReadExactly(head);
        Assert.Equal("not a datastore, somebody's data"u8.ToArray(), head);
    }
}
