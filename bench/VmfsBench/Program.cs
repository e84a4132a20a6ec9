using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Vmk.Vmkernel.Vmfs;
using Vmk.VmfsBench;

// Usage: VmfsBench DIR [SECONDS_PER_ROUND] [ROUNDS]   |   VmfsBench hold DATASTORE DISK (child process)
if (args.Length >= 1 && args[0] == "hold")
{
    using var holder = VmfsDatastore.Open(args[1], "bench-holder");
    using var disk = holder.OpenDisk(args[2]);
    Console.WriteLine("ACQUIRED");
    Console.Out.Flush();
    Thread.Sleep(Timeout.Infinite);
    return 0;
}

var dir = args.Length > 0 ? args[0] : Path.GetTempPath();
var secondsPerRound = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 3;
var rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5;
var path = Path.Combine(dir, $"vmfs-bench-{Environment.ProcessId}.vmfs");
var inv = CultureInfo.InvariantCulture;
try
{
    // Default timings: the takeover figure is for the real hostDeadAfter (10 s).
    VmfsDatastore.Format(path, new FormatOptions { SizeBytes = 3L << 30, MaxHosts = 16, MaxFiles = 64, Label = "bench" });
    using var ds = VmfsDatastore.Open(path, "bench-a");
    const long diskSize = 1L << 30;
    ds.CreateDisk("bench.vmdk", diskSize, thin: false);
    ds.CreateDisk("victim.vmdk", 1 << 20);

    // 1. Uncontended exclusive lease acquisition (Disk Paxos round + leader write); release is not timed.
    var samples = new List<double>();
    for (var i = 0; i < 300; i++)
    {
        var start = Stopwatch.GetTimestamp();
        var lease = ds.AcquireLease("bench.vmdk", LeaseMode.Exclusive);
        samples.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        lease.Dispose();
    }

    samples = samples.Skip(20).Order().ToList(); // the first rounds include JIT
    var p50 = samples[samples.Count / 2];
    var p99 = samples[(int)Math.Ceiling(samples.Count * 0.99) - 1];

    // 2. Overwrite IOPS, 4 KiB random, queue depth 1, through VMFS and raw pwrite at the same device offsets,
    //    alternating rounds so that both see the same machine conditions.
    long vmfsOps = 0, rawOps = 0;
    double vmfsSeconds = 0, rawSeconds = 0;
    bool rawDirect;
    unsafe
    {
        using var disk = ds.OpenDisk("bench.vmdk");
        var random = new Random(1);
        var offsets = Enumerable.Range(0, 1 << 16).Select(_ => random.NextInt64(0, diskSize / 4096) * 4096).ToArray();
        var physical = offsets.Select(o => disk.MapToDevice(o) ?? throw new InvalidOperationException("thick disk has a hole")).ToArray();
        var buffer = (byte*)NativeMemory.AlignedAlloc(4096, 4096);
        new Span<byte>(buffer, 4096).Fill(0x5a);
        using var raw = new RawFile(path);
        rawDirect = raw.DirectIo;
        try
        {
            // Warm up both paths.
            for (var i = 0; i < 2000; i++)
            {
                disk.Write(offsets[i], new ReadOnlySpan<byte>(buffer, 4096), false);
                raw.Write(physical[i], buffer, 4096);
            }

            var roundTicks = (long)(secondsPerRound * Stopwatch.Frequency);
            for (var r = 0; r < rounds; r++)
            {
                var start = Stopwatch.GetTimestamp();
                var n = 0;
                while (Stopwatch.GetTimestamp() - start < roundTicks)
                {
                    raw.Write(physical[n & 0xffff], buffer, 4096);
                    n++;
                }

                rawSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
                rawOps += n;

                start = Stopwatch.GetTimestamp();
                n = 0;
                while (Stopwatch.GetTimestamp() - start < roundTicks)
                {
                    disk.Write(offsets[n & 0xffff], new ReadOnlySpan<byte>(buffer, 4096), false);
                    n++;
                }

                vmfsSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
                vmfsOps += n;
            }
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    // 3. Takeover: a holder process is SIGKILLed; this host waits for its heartbeat to go stale.
    double takeover;
    double sinceLastBeat;
    var self = Environment.ProcessPath!;
    var info = new ProcessStartInfo(self)
    {
        RedirectStandardOutput = true,
        UseShellExecute = false,
    };
    if (self.EndsWith("dotnet", StringComparison.Ordinal))
    {
        info.ArgumentList.Add(typeof(RawFile).Assembly.Location);
    }

    info.ArgumentList.Add("hold");
    info.ArgumentList.Add(path);
    info.ArgumentList.Add("victim.vmdk");
    using (var child = Process.Start(info)!)
    {
        try
        {
            if (child.StandardOutput.ReadLine() != "ACQUIRED")
            {
                throw new InvalidOperationException("the holder process did not acquire the lease");
            }

            child.Kill();
            var killed = Stopwatch.GetTimestamp();
            using var taken = ds.OpenDisk("victim.vmdk", LeaseMode.Exclusive, TimeSpan.FromSeconds(120));
            takeover = Stopwatch.GetElapsedTime(killed).TotalSeconds;
            var lastBeat = ds.GetHosts().Single(h => h.HostName == "bench-holder").LastHeartbeat!.Value;
            sinceLastBeat = (DateTimeOffset.UtcNow - lastBeat).TotalSeconds;
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill();
            }

            child.WaitForExit();
        }
    }

    var rawIops = rawOps / rawSeconds;
    var vmfsIops = vmfsOps / vmfsSeconds;
    var io = rawDirect ? "O_DIRECT" : "buffered: file system refuses O_DIRECT";
    Console.WriteLine(string.Create(inv, $"lease_acquire_p50_ms: {p50:F3}"));
    Console.WriteLine(string.Create(inv, $"lease_acquire_p99_ms: {p99:F3}"));
    Console.WriteLine(string.Create(inv, $"takeover_after_kill_s: {takeover:F2}   (hostDeadAfter: {ds.Timings.HostDeadAfter.TotalSeconds:F0} s; heartbeatInterval: {ds.Timings.HeartbeatInterval.TotalSeconds:F0} s; holder's last heartbeat to takeover: {sinceLastBeat:F2} s)"));
    Console.WriteLine(string.Create(inv, $"raw_overwrite_4k_iops: {rawIops:F0}          (pwrite on the same file, same offsets, {io})"));
    Console.WriteLine(string.Create(inv, $"vmfs_overwrite_4k_iops: {vmfsIops:F0}         (through the virtual-disk interface, blocks already allocated)"));
    Console.WriteLine(string.Create(inv, $"vmfs_vs_raw_ratio: {vmfsIops / rawIops:F3}"));
    return 0;
}
finally
{
    File.Delete(path);
}
