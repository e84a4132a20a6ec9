using System.Security.Cryptography;
using Vmk.Vmkernel.Nbd;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>The same client workload through every serving path: inline, thread pool, copy and sendfile reads.</summary>
public sealed class NbdServerModesTests
{
    public static TheoryData<string> Modes => ["default", "no-zero-copy", "all-on-thread-pool", "tiny-batches"];

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Qemu_io_and_nbdcopy_see_consistent_data_in_every_serving_mode(string mode)
    {
        var options = mode switch
        {
            "no-zero-copy" => new NbdServerOptions { ZeroCopyReads = false },
            "all-on-thread-pool" => new NbdServerOptions { InlineMaxLength = 0 },
            "tiny-batches" => new NbdServerOptions { MaxRepliesPerBatch = 1 },
            _ => new NbdServerOptions(),
        };
        await using var nbd = new NbdTestServer(options);
        nbd.AddSparseExport("disk0", 8L << 20);
        var source = nbd.TempFile("source.raw");
        var copy = nbd.TempFile("copy.raw");

        var patterns = await ToolRunner.RunCheckedAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0x21 0 4k", "-c", "write -P 0x22 1M 2M", "-c", "write -f -P 0x23 4M 64k",
            "-c", "read -P 0x21 0 4k", "-c", "read -P 0x22 1M 2M", "-c", "read -P 0x23 4M 64k", "-c", "read -P 0 5M 3M",
            nbd.Uri("disk0"));
        await File.WriteAllBytesAsync(source, RandomNumberGenerator.GetBytes(8 << 20));
        await ToolRunner.RunCheckedAsync("nbdcopy", source, nbd.Uri("disk0"));
        await ToolRunner.RunCheckedAsync("nbdcopy", nbd.Uri("disk0"), copy);

        Assert.DoesNotContain("fail", patterns, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(SHA256.HashData(await File.ReadAllBytesAsync(source)), SHA256.HashData(await File.ReadAllBytesAsync(copy)));
    }
}
