using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Tests.Storage;

public sealed class FileBlockDeviceTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vmk-fbd-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_new_device_is_one_hole_that_reads_as_zeros()
    {
        using var device = FileBlockDevice.Create(Path.Combine(_directory, "d.img"), 8 << 20);
        var buffer = new byte[4096];
        Array.Fill(buffer, (byte)0xff);

        device.Read(1 << 20, buffer);

        Assert.All(buffer, b => Assert.Equal(0, b));
        Assert.Equal([new BlockExtent(0, 8 << 20, IsHole: true, IsZero: true)], device.GetExtents(0, 8 << 20));
    }

    [Fact]
    public void Written_data_reads_back_and_shows_as_allocated_between_holes()
    {
        using var device = FileBlockDevice.Create(Path.Combine(_directory, "d.img"), 8 << 20);
        var data = new byte[1 << 20];
        Random.Shared.NextBytes(data);

        device.Write(2 << 20, data, forceUnitAccess: true);
        var back = new byte[data.Length];
        device.Read(2 << 20, back);
        var extents = device.GetExtents(1 << 20, 4 << 20);

        Assert.Equal(data, back);
        Assert.Equal(
            [new BlockExtent(1 << 20, 1 << 20, true, true), new BlockExtent(2 << 20, 1 << 20, false, false), new BlockExtent(3 << 20, 2 << 20, true, true)],
            extents);
    }

    [Fact]
    public void Trim_and_write_zeroes_make_ranges_read_as_zeros()
    {
        using var device = FileBlockDevice.Create(Path.Combine(_directory, "d.img"), 4 << 20);
        var ones = Enumerable.Repeat((byte)1, 4 << 20).ToArray();
        device.Write(0, ones, forceUnitAccess: false);

        device.Trim(0, 1 << 20);
        device.WriteZeroes(1 << 20, 1 << 20, mayDeallocate: true);
        device.WriteZeroes(2 << 20, 1 << 20, mayDeallocate: false);
        var back = new byte[4 << 20];
        device.Read(0, back);

        Assert.All(back.AsSpan(0, 3 << 20).ToArray(), b => Assert.Equal(0, b));
        Assert.All(back.AsSpan(3 << 20).ToArray(), b => Assert.Equal(1, b));
        Assert.Contains(device.GetExtents(0, 4 << 20), e => e.IsHole && e.Offset == 0 && e.Length >= 2 << 20);
    }

    [Fact]
    public void Ranges_outside_the_device_and_writes_to_a_read_only_device_are_refused()
    {
        var path = Path.Combine(_directory, "d.img");
        FileBlockDevice.Create(path, 1 << 20).Dispose();
        using var device = FileBlockDevice.Open(path);
        using var readOnly = FileBlockDevice.Open(path, readOnly: true);

        Assert.Throws<ArgumentOutOfRangeException>(() => device.Read((1 << 20) - 10, new byte[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => device.Write(-1, new byte[1], false));
        Assert.Throws<ArgumentOutOfRangeException>(() => device.GetExtents(0, (1 << 20) + 1));
        var ex = Assert.Throws<InvalidOperationException>(() => readOnly.Write(0, new byte[1], false));
        Assert.Contains("read-only", ex.Message, StringComparison.Ordinal);
        Assert.True(readOnly.IsReadOnly);
        Assert.Equal(1 << 20, readOnly.Size);
    }
}
