using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

/// <summary>A datastore file in a unique temp directory, removed (with everything in it) on dispose.</summary>
public sealed class TempDatastore : IDisposable
{
    /// <summary>Short timings so lease tests run in seconds; fenceAfter + maxIoLatency &lt; hostDeadAfter still holds.</summary>
    public static readonly VmfsTimings FastTimings = new()
    {
        HeartbeatInterval = TimeSpan.FromMilliseconds(150),
        FenceAfter = TimeSpan.FromMilliseconds(1000),
        HostDeadAfter = TimeSpan.FromMilliseconds(2000),
        MaxIoLatency = TimeSpan.FromMilliseconds(50),
    };

    public TempDatastore(long sizeBytes = 256L << 20, bool format = true, FormatOptions? options = null)
    {
        // /tmp is a disk file system here (O_DIRECT works); /dev/shm would exercise the buffered fallback.
        Directory = Path.Combine(Path.GetTempPath(), $"vmfs-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
        FilePath = System.IO.Path.Combine(Directory, "ds.vmfs");
        if (format)
        {
            VmfsDatastore.Format(FilePath, (options ?? SmallOptions) with { SizeBytes = sizeBytes });
        }
    }

    public static FormatOptions SmallOptions => new()
    {
        MaxHosts = 8,
        MaxFiles = 64,
        JournalBytes = 1 << 20,
        Timings = FastTimings,
        Label = "test",
    };

    public string Directory { get; }

    public string FilePath { get; }

    public VmfsDatastore Join(string host, Action<string>? onFenced = null) => VmfsDatastore.Open(FilePath, host, null, null, onFenced);

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
