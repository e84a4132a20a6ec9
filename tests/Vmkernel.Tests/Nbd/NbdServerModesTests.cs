using System.Security.Cryptography;
using Vmk.Vmkernel.Nbd;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>The same client workload through every serving path: inline, I/O threads, copy and sendfile reads.</summary>
public sealed class NbdServerModesTests
{
    public static TheoryData<string> Modes => ["default", "no-zero-copy", "all-on-io-threads", "tiny-batches"];

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Qemu_io_and_nbdcopy_see_consistent_data_in_every_serving_mode(string mode)
    {
        var options = mode switch
        {
            "no-zero-copy" => new NbdServerOptions { ZeroCopyReads = false },
            "all-on-io-threads" => new NbdServerOptions { InlineMaxLength = 0 },
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

    [Fact]
    public async Task Requests_to_a_device_with_disk_latency_run_in_parallel_not_one_after_another()
    {
        await using var nbd = new NbdTestServer();
        var path = nbd.TempFile("slow.img");
        await File.WriteAllBytesAsync(path, RandomNumberGenerator.GetBytes(1 << 20));
        using var device = new DiskLatencyDevice(Vmk.Vmkernel.Storage.FileBlockDevice.Open(path));
        nbd.Server.AddExport("slow", device);

        using var client = RawNbdClient.Connect(nbd.SocketPath);
        client.Go("slow");
        for (int i = 0; i < 64; i++)
        {
            client.SendRequest(0, (ulong)i, (ulong)i * 4096, 4096);
        }

        for (int i = 0; i < 64; i++)
        {
            Assert.Equal(0u, client.ReadSimpleReply().Error);
            client.Receive(4096);
        }

        // Served inline (one at a time) the device would never see more than one read at once.
        Assert.True(device.MaxConcurrentReads >= 4, $"at most {device.MaxConcurrentReads} reads reached the device at once");
    }

    /// <summary>
    /// A real file device that takes as long as an O_DIRECT read on a virtual disk (about 2 ms here under load);
    /// stands in for a VMFS datastore on a slow disk, which this test cannot otherwise produce on demand.
    /// </summary>
    private sealed class DiskLatencyDevice(Vmk.Vmkernel.Storage.IBlockDevice inner) : Vmk.Vmkernel.Storage.IBlockDevice
    {
        private int _current;
        private int _max;

        public int MaxConcurrentReads => Volatile.Read(ref _max);

        public long Size => inner.Size;

        public bool IsReadOnly => inner.IsReadOnly;

        public void Read(long offset, Span<byte> buffer)
        {
            int now = Interlocked.Increment(ref _current);
            int max;
            while (now > (max = Volatile.Read(ref _max)) && Interlocked.CompareExchange(ref _max, now, max) != max)
            {
            }

            Thread.Sleep(2);
            inner.Read(offset, buffer);
            Interlocked.Decrement(ref _current);
        }

        public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess) => inner.Write(offset, data, forceUnitAccess);

        public void Flush() => inner.Flush();

        public void Trim(long offset, long length) => inner.Trim(offset, length);

        public void WriteZeroes(long offset, long length, bool mayDeallocate) => inner.WriteZeroes(offset, length, mayDeallocate);

        public IReadOnlyList<Vmk.Vmkernel.Storage.BlockExtent> GetExtents(long offset, long length) => inner.GetExtents(offset, length);

        public void Dispose() => inner.Dispose();
    }
}
