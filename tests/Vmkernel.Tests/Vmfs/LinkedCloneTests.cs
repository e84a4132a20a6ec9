using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

public class LinkedCloneTests
{
    private const int MiB = 1 << 20;

    [Fact]
    public void A_linked_clone_reads_through_to_its_base_and_copies_on_write_byte_for_byte()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        ds.CreateDisk("golden", 8L * MiB);
        var golden = new byte[8 * MiB];
        var random = new Random(7);
        using (var disk = ds.OpenDisk("golden"))
        {
            var data = new byte[3 * MiB];
            random.NextBytes(data);
            disk.Write(MiB / 2, data, false); // blocks 0-3 partly, 4-7 holes
            data.CopyTo(golden, MiB / 2);
        }

        var clone = ds.CloneDisk("golden", "vm1");
        Assert.Equal("golden", clone.Base);
        Assert.Equal(0, clone.AllocatedBytes);
        var child = (byte[])golden.Clone();
        using (var disk = ds.OpenDisk("vm1"))
        {
            var back = new byte[8 * MiB];
            disk.Read(0, back);
            Assert.True(golden.AsSpan().SequenceEqual(back), "a fresh clone must read exactly as its base");
            foreach (var (offset, length) in new[] { (MiB + 4096L, 4096), (6L * MiB + 10, 100), (3L * MiB - 512, 1024) })
            {
                var data = new byte[length];
                random.NextBytes(data);
                disk.Write(offset, data, false);
                data.CopyTo(child, offset);
            }

            disk.Read(0, back);
            Assert.True(child.AsSpan().SequenceEqual(back), "clone content differs from the reference");
            Assert.Equal(4L * MiB, disk.AllocatedBytes); // blocks 1, 2, 3 and 6 copied on write
            var extents = disk.GetExtents(0, disk.Size);
            Assert.False(extents[0].IsHole); // base data shows as data
            Assert.Contains(extents, e => e.IsHole && e.Offset == 4L * MiB);
        }

        using (var disk = ds.OpenDisk("golden", LeaseMode.SharedRead))
        {
            var back = new byte[8 * MiB];
            disk.Read(0, back);
            Assert.True(golden.AsSpan().SequenceEqual(back), "the base must not change when a clone is written");
        }

        var writeBase = Assert.Throws<VmfsException>(() => ds.OpenDisk("golden", LeaseMode.Exclusive));
        Assert.Equal(VmfsErrorCode.InvalidState, writeBase.Code);
        Assert.Contains("read-only base", writeBase.Message);
        var deleteBase = Assert.Throws<VmfsException>(() => ds.DeleteDisk("golden"));
        Assert.Contains("'vm1'", deleteBase.Message);

        ds.DeleteDisk("vm1");
        Assert.False(ds.List().Single().ReadOnlyBase);
        ds.OpenDisk("golden", LeaseMode.Exclusive).Dispose();
        Assert.True(VmfsFsck.Check(temp.FilePath).Clean);
    }
}
