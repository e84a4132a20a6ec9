using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

public class VmfsFormatTests
{
    [Fact]
    public void A_formatted_datastore_reports_its_layout_and_free_space()
    {
        using var temp = new TempDatastore(256L << 20);
        var info = VmfsInspector.GetInfo(temp.FilePath);
        Assert.Equal("test", info.Label);
        Assert.Equal(1 << 20, info.BlockSize);
        Assert.Equal(1, info.Version);
        Assert.True(info.CapacityBytes is > 200L << 20 and < 256L << 20);
        Assert.Equal(0, info.UsedBytes);
        Assert.Equal(info.CapacityBytes, info.FreeBytes);
        Assert.Empty(VmfsInspector.List(temp.FilePath));
        Assert.True(info.DirectIo, "the datastore in /tmp (ext4) should be opened with O_DIRECT");
    }

    [Fact]
    public void Too_small_device_is_refused_and_no_file_is_left()
    {
        using var temp = new TempDatastore(format: false);
        var e = Assert.Throws<VmfsException>(() => VmfsDatastore.Format(temp.FilePath, TempDatastore.SmallOptions with { SizeBytes = 4L << 20 }));
        Assert.Equal(VmfsErrorCode.TooSmall, e.Code);
        Assert.Contains("needs at least", e.Message);
        Assert.False(File.Exists(temp.FilePath));
    }

    [Fact]
    public void A_file_that_is_not_a_datastore_is_named_as_such_and_left_unchanged()
    {
        using var temp = new TempDatastore(format: false);
        var junk = new byte[1 << 20];
        Random.Shared.NextBytes(junk);
        File.WriteAllBytes(temp.FilePath, junk);
        var e = Assert.Throws<VmfsException>(() => VmfsInspector.GetInfo(temp.FilePath));
        Assert.Equal(VmfsErrorCode.NotADatastore, e.Code);
        Assert.Contains("not a VMFS datastore", e.Message);
        var e2 = Assert.Throws<VmfsException>(() => VmfsDatastore.Open(temp.FilePath, "h1"));
        Assert.Equal(VmfsErrorCode.NotADatastore, e2.Code);
        Assert.Equal(junk, File.ReadAllBytes(temp.FilePath));
    }

    [Fact]
    public void Formatting_over_a_datastore_needs_force()
    {
        using var temp = new TempDatastore();
        var before = File.ReadAllBytes(temp.FilePath);
        var e = Assert.Throws<VmfsException>(() => VmfsDatastore.Format(temp.FilePath, TempDatastore.SmallOptions));
        Assert.Equal(VmfsErrorCode.AlreadyExists, e.Code);
        Assert.Contains("--force", e.Message);
        Assert.Equal(before, File.ReadAllBytes(temp.FilePath));
        var again = VmfsDatastore.Format(temp.FilePath, TempDatastore.SmallOptions with { Force = true });
        Assert.NotEqual(VmfsInspector.GetInfo(temp.FilePath).Uuid, Guid.Empty);
        Assert.Equal(again.Uuid, VmfsInspector.GetInfo(temp.FilePath).Uuid);
    }

    [Fact]
    public void Formatting_a_datastore_with_a_live_host_is_refused_even_with_force()
    {
        using var temp = new TempDatastore();
        using var ds = temp.Join("esx1");
        var e = Assert.Throws<VmfsException>(() => VmfsDatastore.Format(temp.FilePath, TempDatastore.SmallOptions with { Force = true }));
        Assert.Equal(VmfsErrorCode.Locked, e.Code);
        Assert.Contains("esx1", e.Message);
    }

    [Fact]
    public void A_newer_version_and_a_half_formatted_datastore_are_refused_with_what_to_do()
    {
        using var temp = new TempDatastore();
        var original = File.ReadAllBytes(temp.FilePath);

        // Rewrite the superblock as version 2 with a valid checksum: a datastore from the future.
        RewriteSuperblock(temp.FilePath, record => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(24), 2));
        var newer = Assert.Throws<VmfsException>(() => VmfsDatastore.Open(temp.FilePath, "h1"));
        Assert.Equal(VmfsErrorCode.NewerVersion, newer.Code);
        Assert.Contains("version 2", newer.Message);

        File.WriteAllBytes(temp.FilePath, original);
        RewriteSuperblock(temp.FilePath, record => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(28), 1));
        var half = Assert.Throws<VmfsException>(() => VmfsInspector.GetInfo(temp.FilePath));
        Assert.Equal(VmfsErrorCode.HalfFormatted, half.Code);
        Assert.Contains("format --force", half.Message);
    }

    internal static void RewriteSuperblock(string path, Action<byte[]> change)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var record = new byte[512];
        stream.ReadExactly(record);
        change(record);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), MetadataSector.Checksum(record));
        stream.Position = 0;
        stream.Write(record);
    }
}
