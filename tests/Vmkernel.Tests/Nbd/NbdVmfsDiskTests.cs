using System.Security.Cryptography;
using Vmk.Vmkernel.Tests.Vmfs;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>VMFS virtual disks served over NBD, as the VMkernel serves them to its QEMUs.</summary>
public sealed class NbdVmfsDiskTests : IAsyncLifetime
{
    private readonly TempDatastore _datastore = new(256L << 20);
    private readonly NbdTestServer _nbd = new();
    private VmfsDatastore? _ds;

    public Task InitializeAsync()
    {
        _ds = _datastore.Join("nbd-test-host");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _nbd.DisposeAsync(); // every request is finished before the disks close
        _ds?.Dispose();
        _datastore.Dispose();
    }

    [Fact]
    public async Task Nbdinfo_map_shows_the_holes_of_a_thin_disk_and_the_blocks_written_through_the_server()
    {
        _ds!.CreateDisk("thin", 16L << 20, thin: true);
        using var disk = _ds.OpenDisk("thin");
        _nbd.Server.AddExport("thin", disk);

        var before = await ToolRunner.RunCheckedAsync("nbdinfo", "--map", _nbd.Uri("thin"));
        await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-c", "write -P 0x7e 3M 4k", "-c", "write -P 0x7f 9M 1M", _nbd.Uri("thin"));
        var after = await ToolRunner.RunCheckedAsync("nbdinfo", "--map", _nbd.Uri("thin"));
        var readBack = await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw",
            "-c", "read -P 0x7e 3M 4k", "-c", "read -P 0 3149824 1020k", "-c", "read -P 0 0 3M", "-c", "read -P 0x7f 9M 1M", _nbd.Uri("thin"));

        Assert.Equal("0  16777216  3  hole,zero", Normalize(before));
        Assert.Equal(
            ["0  3145728  3  hole,zero", "3145728  1048576  0  data", "4194304  5242880  3  hole,zero",
             "9437184  1048576  0  data", "10485760  6291456  3  hole,zero"],
            Normalize(after).Split('\n'));
        Assert.DoesNotContain("fail", readBack, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(2L << 20, disk.AllocatedBytes);
    }

    [Fact]
    public async Task A_clone_base_exported_read_only_refuses_writes_while_its_clone_takes_them()
    {
        _ds!.CreateDisk("golden", 8L << 20, thin: true);
        var image = RandomNumberGenerator.GetBytes(8 << 20);
        using (var golden = _ds.OpenDisk("golden"))
        {
            golden.Write(0, image, forceUnitAccess: true);
        }

        _ds.CloneDisk("golden", "vm1");
        using var baseDisk = _ds.OpenDisk("golden", LeaseMode.SharedRead);
        using var clone = _ds.OpenDisk("vm1");
        _nbd.Server.AddExport("golden", baseDisk, readOnly: true);
        _nbd.Server.AddExport("vm1", clone);

        using (var client = RawNbdClient.Connect(_nbd.SocketPath))
        {
            var (_, flags) = client.Go("golden");
            client.SendRequest(1, 1, 0, 4096, payload: new byte[4096]);
            Assert.NotEqual(0, flags & 2); // NBD_FLAG_READ_ONLY
            Assert.Equal((1u, 1ul), client.ReadSimpleReply()); // EPERM
        }

        await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-c", "write -P 0x33 1M 64k", _nbd.Uri("vm1"));
        var cloneCheck = await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-c", "read -P 0x33 1M 64k", _nbd.Uri("vm1"));
        var basePath = _nbd.TempFile("golden.raw");
        await ToolRunner.RunCheckedAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", _nbd.Uri("golden"), basePath);

        Assert.DoesNotContain("fail", cloneCheck, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(image, await File.ReadAllBytesAsync(basePath));
    }

    private static string Normalize(string map) =>
        string.Join('\n', map.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => string.Join("  ", line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(3).Append(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]))));
}
