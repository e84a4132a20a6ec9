using System.Buffers.Binary;
using System.Diagnostics;
using Vmk.Vmkernel.Vmfs;

// One simulated ESXi host per process. Commands print one line per event on stdout for the test to wait on.
// Timings come from the datastore (tests format it with short ones).
Console.Out.Flush();
var command = args.Length > 0 ? args[0] : "";
try
{
    InstallCrashPoint();
    return command switch
    {
        "contend" => Contend(args[1], args[2], int.Parse(args[3]), int.Parse(args[4])),
        "hold" => Hold(args[1], args[2], args[3], args.Skip(4).Contains("kill-timer")),
        "take" => Take(args[1], args[2], args[3]),
        "churn" => Churn(args[1], int.Parse(args[2])),
        "format" => Format(args[1], long.Parse(args[2])),
        _ => Usage(),
    };
}
catch (VmfsException e)
{
    Say($"ERROR {e.Code} {e.Message}");
    return 3;
}

// A small datastore with the short timings the tests use (for running the other commands by hand).
static int Format(string path, long mib)
{
    VmfsDatastore.Format(path, new FormatOptions
    {
        SizeBytes = mib << 20,
        MaxHosts = 8,
        MaxFiles = 64,
        JournalBytes = 1 << 20,
        Timings = new VmfsTimings
        {
            HeartbeatInterval = TimeSpan.FromMilliseconds(150),
            FenceAfter = TimeSpan.FromMilliseconds(1000),
            HostDeadAfter = TimeSpan.FromMilliseconds(2000),
            MaxIoLatency = TimeSpan.FromMilliseconds(50),
        },
    });
    Say("FORMATTED");
    return 0;
}

static int Usage()
{
    Console.Error.WriteLine("usage: contend DS DISK ITERATIONS ID | hold DS DISK HOST [kill-timer] | take DS DISK HOST | churn DS SEED");
    return 64;
}

static void Say(string line)
{
    Console.Out.WriteLine(line);
    Console.Out.Flush();
}

// VMFS_CRASH_AT=step:n kills this process (SIGKILL, no cleanup) at the n-th time the journal reaches `step`.
static void InstallCrashPoint()
{
    var spec = Environment.GetEnvironmentVariable("VMFS_CRASH_AT");
    if (string.IsNullOrEmpty(spec))
    {
        return;
    }

    var parts = spec.Split(':');
    var step = parts[0];
    var remaining = int.Parse(parts[1]);
    VmfsFaultInjection.Hook = at =>
    {
        if (at == step && Interlocked.Decrement(ref remaining) == 0)
        {
            Say($"CRASHING at {at}");
            Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }
    };
}

// N processes x M acquisitions: each holder increments a counter in the disk and checks nobody else wrote it.
static int Contend(string path, string disk, int iterations, int id)
{
    using var ds = VmfsDatastore.Open(path, $"contender-{id}");
    Say($"JOINED slot {ds.HostSlot}");
    var buffer = new byte[4096];
    for (var i = 0; i < iterations; i++)
    {
        using var vd = ds.OpenDisk(disk, LeaseMode.Exclusive, TimeSpan.FromSeconds(120));
        vd.Read(0, buffer);
        var counter = BinaryPrimitives.ReadInt64LittleEndian(buffer);
        BinaryPrimitives.WriteInt64LittleEndian(buffer, counter + 1);
        BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(8), id);
        vd.Write(0, buffer, forceUnitAccess: true);
        // Hold the lease for a moment and check that nobody else wrote meanwhile.
        for (var k = 0; k < 3; k++)
        {
            Thread.Yield();
            var check = new byte[4096];
            vd.Read(0, check);
            if (BinaryPrimitives.ReadInt64LittleEndian(check) != counter + 1 || BinaryPrimitives.ReadInt64LittleEndian(check.AsSpan(8)) != id)
            {
                Say($"VIOLATION expected {counter + 1}/{id} found {BinaryPrimitives.ReadInt64LittleEndian(check)}/{BinaryPrimitives.ReadInt64LittleEndian(check.AsSpan(8))}");
                return 2;
            }
        }
    }

    Say("DONE");
    return 0;
}

// Holds a disk exclusively and writes (host, sequence) records at offset 4096 until it can no longer write.
// With "kill-timer" it opens the datastore as vmkerneld does. Commands on stdin: "lose-heartbeat" makes every
// later heartbeat renewal fail as if the device were gone; "exit" ends the process once it has been refused.
static int Hold(string path, string disk, string host, bool killTimer)
{
    var fenced = new ManualResetEventSlim();
    var exit = new ManualResetEventSlim();
    var heartbeatLost = 0;
    VmfsFaultInjection.Hook = at =>
    {
        if (at == "heartbeat-renew" && Volatile.Read(ref heartbeatLost) != 0)
        {
            throw new VmfsException(VmfsErrorCode.Io, "injected: the heartbeat region cannot be written");
        }
    };
    new Thread(() =>
    {
        while (Console.ReadLine() is { } line)
        {
            if (line == "lose-heartbeat")
            {
                Volatile.Write(ref heartbeatLost, 1);
                Say("HEARTBEAT-LOST");
            }
            else if (line == "exit")
            {
                exit.Set();
            }
        }
    }) { IsBackground = true }.Start();
    using var ds = VmfsDatastore.Open(path, host, onFenced: reason =>
    {
        Say($"FENCED {reason}");
        fenced.Set();
    }, killTimer: killTimer);
    using var vd = ds.OpenDisk(disk, LeaseMode.Exclusive, TimeSpan.FromSeconds(60));
    Say($"ACQUIRED {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()} version {vd.LeaseVersion}");
    var record = new byte[4096];
    host.Select(c => (byte)c).ToArray().CopyTo(record, 16);
    for (long seq = 1; ; seq++)
    {
        BinaryPrimitives.WriteInt64LittleEndian(record, seq);
        try
        {
            vd.Write(4096, record, forceUnitAccess: false);
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Fenced)
        {
            Say($"WRITE-REFUSED after {seq - 1} writes");
            fenced.Wait(TimeSpan.FromSeconds(30));
            if (killTimer)
            {
                Say("STANDING-BY");
                exit.Wait(TimeSpan.FromSeconds(60));
            }

            return 0;
        }

        if (seq == 1)
        {
            Say("WRITING");
        }

        Thread.Sleep(2); // a VM writing now and then, not a benchmark
    }
}

// Takes over a disk (waiting for its holder to be declared dead), writes its own record, and on "check"
// reports whether that record survived.
static int Take(string path, string disk, string host)
{
    using var ds = VmfsDatastore.Open(path, host);
    Say($"JOINED slot {ds.HostSlot}");
    var started = Stopwatch.GetTimestamp();
    using var vd = ds.OpenDisk(disk, LeaseMode.Exclusive, TimeSpan.FromSeconds(120));
    Say($"ACQUIRED {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()} version {vd.LeaseVersion} after {Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms takeovers {ds.LeaseTakeovers}");
    var record = new byte[4096];
    BinaryPrimitives.WriteInt64LittleEndian(record, -1);
    host.Select(c => (byte)c).ToArray().CopyTo(record, 16);
    vd.Write(4096, record, forceUnitAccess: true);
    Say("MARKED");
    while (Console.ReadLine() is { } line)
    {
        if (line == "check")
        {
            var back = new byte[4096];
            vd.Read(4096, back);
            Say(back.AsSpan().SequenceEqual(record) ? "INTACT" : $"OVERWRITTEN seq {BinaryPrimitives.ReadInt64LittleEndian(back)} by {System.Text.Encoding.ASCII.GetString(back, 16, 16).TrimEnd('\0')}");
        }
        else if (line == "exit")
        {
            break;
        }
    }

    return 0;
}

// Random metadata changes forever (the test kills this process at a random moment). Disks a killed
// predecessor held stay locked until it counts as dead: that is expected, not a failure.
static int Churn(string path, int seed)
{
    var random = new Random(seed);
    using var ds = VmfsDatastore.Open(path, $"churn-{seed}");
    Say("READY");
    const int mib = 1 << 20;
    var data = new byte[mib + 4096];
    random.NextBytes(data);
    for (var i = 0; ; i++)
    {
        var disks = ds.List();
        var op = random.Next(7);
        try
        {
            switch (op)
            {
                case 0 or 1 when disks.Count < 12:
                    ds.CreateDisk($"d{seed}-{i}", random.Next(1, 6) * mib, thin: random.Next(4) != 0);
                    break;
                case 2 when disks.Count > 0:
                {
                    var d = disks[random.Next(disks.Count)];
                    if (!d.ReadOnlyBase)
                    {
                        using var vd = ds.OpenDisk(d.Name);
                        var length = (int)Math.Min(data.Length, vd.Size - 4096);
                        vd.Write(random.NextInt64(0, ((vd.Size - length) / 512) + 1) * 512, data.AsSpan(0, length), false);
                    }

                    break;
                }
                case 3 when disks.Count > 0:
                {
                    var d = disks[random.Next(disks.Count)];
                    ds.CloneDisk(d.Name, $"c{seed}-{i}");
                    break;
                }
                case 4 when disks.Count > 0:
                {
                    var d = disks[random.Next(disks.Count)];
                    if (d is { ReadOnlyBase: false, Base: null })
                    {
                        ds.ResizeDisk(d.Name, random.Next(1, 8) * mib);
                    }

                    break;
                }
                case 5 when disks.Count > 0:
                {
                    var d = disks[random.Next(disks.Count)];
                    if (!d.ReadOnlyBase)
                    {
                        using var vd = ds.OpenDisk(d.Name);
                        vd.WriteZeroes(0, vd.Size, mayDeallocate: true);
                    }

                    break;
                }
                case 6 when disks.Count > 4:
                {
                    var d = disks[random.Next(disks.Count)];
                    if (d.Clones == 0)
                    {
                        ds.DeleteDisk(d.Name);
                    }

                    break;
                }
            }
        }
        catch (VmfsException e) when (e.Code is VmfsErrorCode.NoSpace or VmfsErrorCode.InvalidState or VmfsErrorCode.Locked)
        {
        }

        if (i % 10 == 0)
        {
            Say($"OPS {i}");
        }
    }
}
