using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Tests.Storage;

/// <summary>
/// A migration's source revokes its disk exports before it releases the leases: a write already inside finishes
/// first, and nothing gets in afterwards.
/// </summary>
public sealed class LeaseGatedDiskTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vmk-revoke-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Revoke_returns_only_after_the_write_in_progress_and_then_refuses_every_request()
    {
        using var file = FileBlockDevice.Create(Path.Combine(_directory, "d.img"), 1 << 20);
        var slow = new BlockingWrites(file);
        var disk = new LeaseGatedDisk("disk ds/seq of VM test", file.Size, readOnly: false);
        disk.Activate(slow);
        var data = new byte[4096];
        Array.Fill(data, (byte)0x5a);

        var writing = Task.Run(() => disk.Write(0, data, forceUnitAccess: false));
        await slow.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var revoking = Task.Run(disk.Revoke);
        // Once new requests are refused the revocation has begun; it cannot have returned while the write is inside.
        var probe = new byte[512];
        while (true)
        {
            try
            {
                disk.Read(8192, probe);
                await Task.Yield();
            }
            catch (UnauthorizedAccessException)
            {
                break;
            }
        }
        Assert.False(revoking.IsCompleted, "Revoke returned while a write was still in progress");
        slow.Release.Set();
        await writing.WaitAsync(TimeSpan.FromSeconds(30));
        await revoking.WaitAsync(TimeSpan.FromSeconds(30));

        var read = new byte[4096];
        file.Read(0, read);
        Assert.Equal(data, read);
        var refused = Assert.Throws<UnauthorizedAccessException>(() => disk.Write(4096, data, forceUnitAccess: false));
        Assert.Contains("handed over to another host", refused.Message, StringComparison.Ordinal);
        Assert.Throws<UnauthorizedAccessException>(() => disk.Read(0, read));
        Assert.Throws<UnauthorizedAccessException>(disk.Flush);
        Assert.False(disk.TryMapToFile(0, 4096, out _, out _));
        file.Read(4096, read);
        Assert.All(read, b => Assert.Equal(0, b));
    }

    /// <summary>A device whose writes wait for the test to let them go.</summary>
    private sealed class BlockingWrites(IBlockDevice inner) : IBlockDevice
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ManualResetEventSlim Release { get; } = new();

        public long Size => inner.Size;

        public bool IsReadOnly => false;

        public void Read(long offset, Span<byte> buffer) => inner.Read(offset, buffer);

        public void Write(long offset, ReadOnlySpan<byte> data, bool forceUnitAccess)
        {
            Entered.TrySetResult();
            Release.Wait();
            inner.Write(offset, data, forceUnitAccess);
        }

        public void Flush() => inner.Flush();

        public void Trim(long offset, long length) => inner.Trim(offset, length);

        public void WriteZeroes(long offset, long length, bool mayDeallocate) => inner.WriteZeroes(offset, length, mayDeallocate);

        public IReadOnlyList<BlockExtent> GetExtents(long offset, long length) => inner.GetExtents(offset, length);

        public void Dispose() => Release.Dispose();
    }
}
