using System.Security.Cryptography;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>libnbd's tools (nbdinfo, nbdcopy): exports, sizes, allocation maps and multi-connection copies.</summary>
public sealed class NbdLibnbdClientTests : IAsyncLifetime
{
    private readonly NbdTestServer _nbd = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _nbd.DisposeAsync();

    [Fact]
    public async Task Nbdinfo_reports_the_size_of_each_export()
    {
        _nbd.AddSparseExport("small", 5L << 20);
        _nbd.AddSparseExport("large", 3L << 30);

        var small = await ToolRunner.RunCheckedAsync("nbdinfo", "--size", _nbd.Uri("small"));
        var large = await ToolRunner.RunCheckedAsync("nbdinfo", "--size", _nbd.Uri("large"));

        Assert.Equal((5L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), small.Trim());
        Assert.Equal((3L << 30).ToString(System.Globalization.CultureInfo.InvariantCulture), large.Trim());
    }

    [Fact]
    public async Task Nbdinfo_lists_every_export_with_its_properties()
    {
        _nbd.AddSparseExport("vm1-disk0", 1L << 20);
        _nbd.AddRandomExport("base-image", 1 << 20, readOnly: true);

        var list = await ToolRunner.RunCheckedAsync("nbdinfo", "--list", _nbd.Uri(""));

        Assert.Contains("export=\"vm1-disk0\"", list, StringComparison.Ordinal);
        Assert.Contains("export=\"base-image\"", list, StringComparison.Ordinal);
        Assert.Contains("base:allocation", list, StringComparison.Ordinal);
        Assert.Contains("can_multi_conn: true", list, StringComparison.Ordinal);
        var baseSection = list[list.IndexOf("export=\"base-image\"", StringComparison.Ordinal)..];
        Assert.Contains("is_read_only: true", baseSection.Split("export=")[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nbdinfo_map_shows_the_holes_of_a_sparse_disk()
    {
        var path = _nbd.AddSparseExport("thin", 8L << 20);
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            file.Position = 1 << 20;
            file.Write(RandomNumberGenerator.GetBytes(1 << 20));
            file.Position = 5 << 20;
            file.Write(RandomNumberGenerator.GetBytes(64 << 10));
        }

        var map = ParseMap(await ToolRunner.RunCheckedAsync("nbdinfo", "--map", _nbd.Uri("thin")));

        Assert.Equal((0L, 1L << 20, "hole,zero"), map[0]);
        Assert.Equal((1L << 20, 1L << 20, "data"), map[1]);
        Assert.Contains((5L << 20, 64L << 10, "data"), map);
        Assert.Equal(8L << 20, map.Sum(e => e.Length));
        Assert.Equal(2, map.Count(e => e.Kind == "data"));
    }

    [Fact]
    public async Task Trim_and_write_zeroes_through_the_server_leave_holes_that_read_as_zeros()
    {
        var path = _nbd.AddRandomExport("disk0", 4 << 20);

        await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-d", "unmap",
            "-c", "discard 0 1M",
            "-c", "write -z -u 2M 1M",
            "-c", "write -z 3M 512k",
            _nbd.Uri("disk0"));
        var map = ParseMap(await ToolRunner.RunCheckedAsync("nbdinfo", "--map", _nbd.Uri("disk0")));
        var verify = await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-c", "read -P 0 2M 1M", "-c", "read -P 0 3M 512k", _nbd.Uri("disk0"));

        // Trimmed and unmapped ranges are holes; zeroed-but-kept (NO_HOLE) becomes unwritten extents, which ext4
        // also reports as holes. Either way every byte there must be reported as reading zero, the rest as data.
        Assert.Contains((0L, 1L << 20, "hole,zero"), map);
        Assert.True(ReportedAs(map, 2L << 20, (3L << 20) + (512L << 10), "zero"), string.Join(", ", map));
        Assert.True(ReportedAs(map, 1L << 20, 2L << 20, "data"), string.Join(", ", map));
        Assert.DoesNotContain("fail", verify, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(4L << 20, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Nbdcopy_moves_a_random_image_in_and_out_over_several_connections_unchanged()
    {
        _nbd.AddSparseExport("disk0", 48L << 20);
        var source = _nbd.TempFile("source.raw");
        var copy = _nbd.TempFile("copy.raw");
        await File.WriteAllBytesAsync(source, RandomNumberGenerator.GetBytes(48 << 20));

        await ToolRunner.RunCheckedAsync("nbdcopy", "--connections=4", "--requests=16", source, _nbd.Uri("disk0"));
        var export = _nbd.Server.FindExport("disk0")!;
        long connectionsUsed = export.GetSnapshot().ConnectionsTotal;
        await ToolRunner.RunCheckedAsync("nbdcopy", "--connections=4", _nbd.Uri("disk0"), copy);

        Assert.Equal(SHA256.HashData(await File.ReadAllBytesAsync(source)), SHA256.HashData(await File.ReadAllBytesAsync(copy)));
        Assert.True(connectionsUsed >= 2, $"nbdcopy used {connectionsUsed} connection(s); multi-conn was not taken up");
    }

    private static bool ReportedAs(List<(long Offset, long Length, string Kind)> map, long start, long end, string kind) =>
        map.Where(e => e.Offset < end && e.Offset + e.Length > start).All(e => e.Kind.Contains(kind, StringComparison.Ordinal));

    private static List<(long Offset, long Length, string Kind)> ParseMap(string output) =>
        [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture), f[3]))];
}
