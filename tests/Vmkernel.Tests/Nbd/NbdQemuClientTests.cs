using System.Security.Cryptography;
using System.Text.Json;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>QEMU's own NBD client (qemu-img, qemu-io) against the server, as QEMU guests will use it.</summary>
public sealed class NbdQemuClientTests : IAsyncLifetime
{
    private readonly NbdTestServer _nbd = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _nbd.DisposeAsync();

    [Fact]
    public async Task Qemu_img_info_reports_the_export_size()
    {
        _nbd.AddSparseExport("disk0", 64L << 20);

        var json = await ToolRunner.RunCheckedAsync("qemu-img", "info", "--output=json", _nbd.Uri("disk0"));

        using var info = JsonDocument.Parse(json);
        Assert.Equal(64L << 20, info.RootElement.GetProperty("virtual-size").GetInt64());
    }

    [Fact]
    public async Task Patterns_written_with_qemu_io_read_back_through_the_server_and_land_in_the_file()
    {
        var path = _nbd.AddSparseExport("disk0", 16L << 20);

        // Small (served inline), large (I/O threads, sendfile), FUA, unaligned, and a read of a never-written hole.
        var output = await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0xab 0 1M",
            "-c", "write -P 0x5c 4M 64k",
            "-c", "write -f -P 0x11 6M 3M",
            "-c", "write -P 0x77 12345 1000",
            "-c", "read -P 0xab 0 12345",
            "-c", "read -P 0x77 12345 1000",
            "-c", "read -P 0x5c 4M 64k",
            "-c", "read -P 0x11 6M 3M",
            "-c", "read -P 0 10M 6M",
            _nbd.Uri("disk0"));

        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        var file = await File.ReadAllBytesAsync(path);
        Assert.All(file.AsSpan(0, 12345).ToArray(), b => Assert.Equal(0xab, b));
        Assert.All(file.AsSpan(12345, 1000).ToArray(), b => Assert.Equal(0x77, b));
        Assert.All(file.AsSpan(4 << 20, 64 << 10).ToArray(), b => Assert.Equal(0x5c, b));
        Assert.All(file.AsSpan(6 << 20, 3 << 20).ToArray(), b => Assert.Equal(0x11, b));
        Assert.Equal(16L << 20, file.Length);
    }

    [Fact]
    public async Task A_pattern_mismatch_is_noticed_by_qemu_io()
    {
        // Guards the test above: qemu-io must report a wrong pattern, otherwise those checks prove nothing.
        _nbd.AddSparseExport("disk0", 1L << 20);

        var result = await ToolRunner.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x01 0 4k", "-c", "read -P 0x02 0 4k", _nbd.Uri("disk0"));

        Assert.Contains("Pattern verification failed", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_img_convert_into_and_out_of_an_export_keeps_every_byte()
    {
        _nbd.AddSparseExport("disk0", 24L << 20);
        var source = _nbd.TempFile("source.raw");
        var data = RandomNumberGenerator.GetBytes(24 << 20);
        Array.Clear(data, 8 << 20, 4 << 20); // a zero run, which qemu-img writes as write-zeroes
        await File.WriteAllBytesAsync(source, data);

        await ToolRunner.RunCheckedAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, _nbd.Uri("disk0"));
        var sameIn = await ToolRunner.RunCheckedAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", source, _nbd.Uri("disk0"));
        var exported = _nbd.TempFile("exported.qcow2");
        await ToolRunner.RunCheckedAsync("qemu-img", "convert", "-f", "raw", "-O", "qcow2", _nbd.Uri("disk0"), exported);
        var sameOut = await ToolRunner.RunCheckedAsync("qemu-img", "compare", "-f", "raw", "-F", "qcow2", source, exported);

        Assert.Contains("Images are identical", sameIn, StringComparison.Ordinal);
        Assert.Contains("Images are identical", sameOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_img_compare_notices_a_difference_made_behind_the_servers_back()
    {
        var path = _nbd.AddRandomExport("disk0", 2 << 20);
        var copy = _nbd.TempFile("copy.raw");
        File.Copy(path, copy);
        await using (var stream = new FileStream(copy, FileMode.Open))
        {
            stream.Position = 1 << 20;
            stream.WriteByte((byte)(stream.ReadByte() ^ 0xff));
        }

        var result = await ToolRunner.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", copy, _nbd.Uri("disk0"));

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Content mismatch at offset 1048576", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_read_only_export_refuses_writes_from_qemu_io_and_keeps_its_data()
    {
        var path = _nbd.AddRandomExport("base", 1 << 20, readOnly: true);
        var before = await File.ReadAllBytesAsync(path);

        var write = await ToolRunner.RunAsync("qemu-io", "-f", "raw", "-c", "write -P 0x42 0 64k", _nbd.Uri("base"));
        var read = await ToolRunner.RunCheckedAsync("qemu-io", "-r", "-f", "raw", "-c", "read 0 1M", _nbd.Uri("base"));

        Assert.True(write.ExitCode != 0 || write.Output.Contains("read-only", StringComparison.OrdinalIgnoreCase) ||
                    write.Output.Contains("not permitted", StringComparison.OrdinalIgnoreCase), write.Output);
        Assert.DoesNotContain("wrote", write.Output, StringComparison.Ordinal);
        Assert.Contains("read 1048576/1048576 bytes", read, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task Qemu_img_reaches_an_export_over_tcp()
    {
        _nbd.AddSparseExport("disk0", 3L << 20);
        await using var tcp = _nbd.Server.ListenTcp(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));

        await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-c", "write -P 0x3c 1M 1M", $"nbd://127.0.0.1:{tcp.Port}/disk0");
        var output = await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw", "-c", "read -P 0x3c 1M 1M", _nbd.Uri("disk0"));

        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
    }
}
