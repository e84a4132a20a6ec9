using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

public class VirtualDiskTests
{
    private const int MiB = 1 << 20;

    [Fact]
    public void Thin_disk_allocates_on_first_write_and_matches_a_reference_file_byte_for_byte()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        var info = ds.CreateDisk("vm1.vmdk", 16L * MiB, thin: true);
        Assert.Equal(0, info.AllocatedBytes);
        var reference = new byte[16 * MiB];
        var random = new Random(42);
        using (var disk = ds.OpenDisk("vm1.vmdk"))
        {
            Assert.Equal(16L * MiB, disk.Size);
            // Aligned, unaligned, block-crossing and tiny writes.
            foreach (var (offset, length) in new[] { (0L, 4096), (MiB + 100L, 5000), (3L * MiB - 10, 30), (5L * MiB, 2 * MiB + 512), (15L * MiB + 4095, 1) })
            {
                var data = new byte[length];
                random.NextBytes(data);
                disk.Write(offset, data, forceUnitAccess: false);
                data.CopyTo(reference, offset);
            }

            disk.Flush();
            var back = new byte[16 * MiB];
            disk.Read(0, back);
            Assert.True(reference.AsSpan().SequenceEqual(back), "disk content differs from the reference");
            var extents = disk.GetExtents(0, disk.Size);
            Assert.Equal(disk.Size, extents.Sum(e => e.Length));
            Assert.True(extents[0] is { Offset: 0, IsHole: false });
            Assert.Contains(extents, e => e.IsHole && e.Offset == 4L * MiB);
        }

        var listed = Assert.Single(ds.List());
        Assert.Equal(16L * MiB, listed.SizeBytes);
        Assert.Equal(8L * MiB, listed.AllocatedBytes); // blocks 0, 1, 2, 3, 5, 6, 7 and 15
        Assert.Equal(8L * MiB, ds.GetInfo().UsedBytes - MiB); // plus one block-map block
    }

    [Fact]
    public void A_flush_reaches_the_device_only_when_a_write_completed_since_the_last_one()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        ds.CreateDisk("thick", 4L * MiB, thin: false);
        using var disk = ds.OpenDisk("thick");
        var sector = new byte[512];
        sector.AsSpan().Fill(0x5A);

        disk.Write(MiB, sector, forceUnitAccess: false);
        var before = ds.Device.Flushes;
        disk.Flush();
        Assert.Equal(before + 1, ds.Device.Flushes);

        // Nothing written since: a second flush (QEMU's, as a migrating source stops its guest) has nothing to make durable.
        disk.Flush();
        Assert.Equal(before + 1, ds.Device.Flushes);

        disk.Write(2 * MiB, sector, forceUnitAccess: false);
        disk.Flush();
        Assert.Equal(before + 2, ds.Device.Flushes);

        // A write with FUA is made durable by itself.
        disk.Write(3 * MiB, sector, forceUnitAccess: true);
        Assert.Equal(before + 3, ds.Device.Flushes);
        disk.Flush();
        Assert.Equal(before + 3, ds.Device.Flushes);
        var back = new byte[512];
        disk.Read(2 * MiB, back);
        Assert.Equal(sector, back);
    }

    [Fact]
    public void Thick_disk_is_allocated_and_zeroed_at_creation()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        var info = ds.CreateDisk("thick", 4L * MiB, thin: false);
        Assert.Equal(4L * MiB, info.AllocatedBytes);
        using var disk = ds.OpenDisk("thick");
        var back = new byte[4 * MiB];
        back.AsSpan().Fill(0xAA);
        disk.Read(0, back);
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0);
        Assert.All(disk.GetExtents(0, disk.Size), e => Assert.False(e.IsHole));
    }

    [Fact]
    public void Write_zeroes_with_deallocation_punches_holes_and_frees_space()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        ds.CreateDisk("d", 8L * MiB);
        using var disk = ds.OpenDisk("d");
        var data = new byte[8 * MiB];
        Random.Shared.NextBytes(data);
        disk.Write(0, data, false);
        var used = ds.GetInfo().UsedBytes;
        disk.WriteZeroes(MiB + 512, 3L * MiB, mayDeallocate: true); // blocks 2 and 3 whole, 1 and 4 partly
        data.AsSpan(MiB + 512, 3 * MiB).Clear();
        var back = new byte[8 * MiB];
        disk.Read(0, back);
        Assert.True(data.AsSpan().SequenceEqual(back));
        Assert.Equal(used - (2L * MiB), ds.GetInfo().UsedBytes);
        Assert.Contains(disk.GetExtents(0, disk.Size), e => e is { IsHole: true, Offset: 2L * MiB, Length: 2L * MiB });
        disk.Trim(0, disk.Size);
        Assert.All(disk.GetExtents(0, disk.Size), e => Assert.True(e.IsHole));
        disk.Read(0, back);
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Bad_disk_requests_fail_clearly_and_change_nothing()
    {
        using var temp = new TempDatastore(64L << 20);
        using var ds = temp.Join("esx1");
        ds.CreateDisk("a", MiB);
        var before = ds.GetInfo();

        var exists = Assert.Throws<VmfsException>(() => ds.CreateDisk("a", MiB));
        Assert.Equal(VmfsErrorCode.AlreadyExists, exists.Code);
        var tooLong = Assert.Throws<VmfsException>(() => ds.CreateDisk(new string('x', 200), MiB));
        Assert.Equal(VmfsErrorCode.InvalidArgument, tooLong.Code);
        Assert.Contains("at most 128 bytes", tooLong.Message);
        var slash = Assert.Throws<VmfsException>(() => ds.CreateDisk("a/b", MiB));
        Assert.Equal(VmfsErrorCode.InvalidArgument, slash.Code);
        var odd = Assert.Throws<VmfsException>(() => ds.CreateDisk("odd", 1000));
        Assert.Contains("multiple of 512", odd.Message);
        var thick = Assert.Throws<VmfsException>(() => ds.CreateDisk("big", 1L << 30, thin: false));
        Assert.Equal(VmfsErrorCode.NoSpace, thick.Code);
        var thin = Assert.Throws<VmfsException>(() => ds.CreateDisk("big", 1L << 30, thin: true));
        Assert.Equal(VmfsErrorCode.NoSpace, thin.Code);
        Assert.Contains("over-commit", thin.Message);
        var missing = Assert.Throws<VmfsException>(() => ds.OpenDisk("nope"));
        Assert.Equal(VmfsErrorCode.NotFound, missing.Code);

        var after = ds.GetInfo();
        Assert.Equal(before.UsedBytes, after.UsedBytes);
        Assert.Equal(before.Disks, after.Disks);
        Assert.Equal(["a"], ds.List().Select(d => d.Name));
    }

    [Fact]
    public void Thin_overcommit_is_allowed_only_when_the_datastore_says_so_and_free_space_stays_honest()
    {
        using var temp = new TempDatastore(64L << 20, options: TempDatastore.SmallOptions with { AllowThinOvercommit = true });
        using var ds = temp.Join("esx1");
        var info = ds.CreateDisk("big", 1L << 30, thin: true);
        Assert.Equal(1L << 30, info.SizeBytes);
        var ds1 = ds.GetInfo();
        Assert.True(ds1.ProvisionedBytes > ds1.CapacityBytes);
        Assert.Equal(ds1.CapacityBytes - MiB, ds1.FreeBytes); // only the block map is really used
        var thick = Assert.Throws<VmfsException>(() => ds.CreateDisk("thick", 1L << 30, thin: false));
        Assert.Equal(VmfsErrorCode.NoSpace, thick.Code);
    }

    [Fact]
    public void Resize_grows_and_shrinks_and_the_shrunk_range_reads_zero_after_growing_again()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        ds.CreateDisk("r", 4L * MiB);
        var data = new byte[4 * MiB];
        Random.Shared.NextBytes(data);
        using (var disk = ds.OpenDisk("r"))
        {
            disk.Write(0, data, false);
        }

        Assert.Equal(3L * MiB + 4096, ds.ResizeDisk("r", 3L * MiB + 4096).SizeBytes);
        var grown = ds.ResizeDisk("r", 8L * MiB);
        Assert.Equal(4L * MiB, grown.AllocatedBytes);
        using (var disk = ds.OpenDisk("r"))
        {
            var back = new byte[8 * MiB];
            disk.Read(0, back);
            Assert.True(back.AsSpan(0, 3 * MiB + 4096).SequenceEqual(data.AsSpan(0, 3 * MiB + 4096)));
            Assert.True(back.AsSpan(3 * MiB + 4096).IndexOfAnyExcept((byte)0) < 0, "bytes past the old end must read as zeros");
        }
    }

    [Fact]
    public void Many_requests_in_flight_at_once_allocate_each_block_once_and_lose_no_write()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        ds.CreateDisk("busy", 16L * MiB);
        using var disk = ds.OpenDisk("busy");
        var reference = new byte[16 * MiB];
        new Random(3).NextBytes(reference);
        // Disjoint 4 KiB (and some unaligned 1000-byte) writes from many threads, first writes and overwrites mixed.
        var chunks = Enumerable.Range(0, 16 * MiB / 4096).OrderBy(_ => Random.Shared.Next()).ToArray();
        Parallel.ForEach(chunks, new ParallelOptions { MaxDegreeOfParallelism = 8 }, c =>
        {
            var offset = c * 4096L;
            if (c % 7 == 0)
            {
                disk.Write(offset, reference.AsSpan((int)offset, 1000), false);
                disk.Write(offset + 1000, reference.AsSpan((int)offset + 1000, 3096), false);
            }
            else
            {
                disk.Write(offset, reference.AsSpan((int)offset, 4096), false);
            }
        });
        var back = new byte[16 * MiB];
        disk.Read(0, back);
        Assert.True(reference.AsSpan().SequenceEqual(back));
        Assert.Equal(16L * MiB, disk.AllocatedBytes);
        Assert.True(VmfsFsck.Check(temp.FilePath).Clean);
    }

    [Fact]
    public void A_datastore_on_tmpfs_works_with_whatever_io_mode_the_kernel_offers()
    {
        // Older kernels refuse O_DIRECT on tmpfs (the buffered fallback); newer ones accept it.
        var path = Path.Combine("/dev/shm", $"vmfs-test-{Guid.NewGuid():N}.vmfs");
        try
        {
            VmfsDatastore.Format(path, TempDatastore.SmallOptions with { SizeBytes = 64L << 20 });
            using var ds = VmfsDatastore.Open(path, "esx1");
            ds.CreateDisk("d", MiB);
            using var disk = ds.OpenDisk("d");
            var data = new byte[4096];
            Random.Shared.NextBytes(data);
            disk.Write(12345, data, true);
            var back = new byte[4096];
            disk.Read(12345, back);
            Assert.Equal(data, back);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void The_buffered_fallback_reads_and_writes_unaligned_ranges_exactly()
    {
        using var temp = new TempDatastore();
        using var device = VmfsDevice.Open(temp.FilePath, writable: true, preferDirect: false);
        using var direct = VmfsDevice.Open(temp.FilePath, writable: true);
        Assert.False(device.DirectIo);
        Assert.Equal(1, device.MemoryAlignment);
        Assert.True(direct.DirectIo);
        var data = new byte[10_000];
        Random.Shared.NextBytes(data);
        device.Write(200L << 20 | 77, data);
        var back = new byte[10_000];
        direct.Read(200L << 20 | 77, back); // the O_DIRECT path, unaligned, through its bounce buffer
        Assert.Equal(data, back);
    }
}
