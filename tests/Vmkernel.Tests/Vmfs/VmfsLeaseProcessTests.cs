using System.Diagnostics;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

/// <summary>Leases between hosts that are separate processes sharing one datastore file, as the issue asks.</summary>
[Trait("Category", "Slow")]
public class VmfsLeaseProcessTests
{
    private static readonly VmfsTimings T = TempDatastore.FastTimings;

    [Fact]
    public void Exclusive_lease_gives_mutual_exclusion_under_contention_between_processes()
    {
        const int processes = 4;
        const int iterations = 12;
        using var temp = new TempDatastore();
        using (var ds = temp.Join("setup"))
        {
            ds.CreateDisk("counter", 1 << 20, thin: false);
        }

        var hosts = Enumerable.Range(1, processes).Select(i => HostProcess.Start("contend", temp.FilePath, "counter", $"{iterations}", $"{i}")).ToList();
        try
        {
            foreach (var h in hosts)
            {
                Assert.True(h.WaitForExit(TimeSpan.FromSeconds(180)), $"contender {h.Pid} did not finish:\n{h.Output}");
                Assert.True(h.ExitCode == 0, $"contender {h.Pid} failed (exit {h.ExitCode}):\n{h.Output}");
                Assert.DoesNotContain("VIOLATION", h.Output);
            }

            using var check = temp.Join("check");
            using var disk = check.OpenDisk("counter", LeaseMode.SharedRead);
            var buffer = new byte[4096];
            disk.Read(0, buffer);
            Assert.Equal(processes * iterations, BitConverter.ToInt64(buffer));
            Assert.True(VmfsFsck.Check(temp.FilePath).Clean);
        }
        finally
        {
            hosts.ForEach(h => h.Dispose());
        }
    }

    [Fact]
    public void A_killed_holder_is_taken_over_only_after_hostDeadAfter()
    {
        using var temp = new TempDatastore();
        using (var ds = temp.Join("setup"))
        {
            ds.CreateDisk("vm.vmdk", 1 << 20);
        }

        using var holder = HostProcess.Start("hold", temp.FilePath, "vm.vmdk", "esx-a");
        holder.WaitFor("WRITING", TimeSpan.FromSeconds(30));
        using var taker = HostProcess.Start("take", temp.FilePath, "vm.vmdk", "esx-b");
        taker.WaitFor("JOINED", TimeSpan.FromSeconds(30));

        // While the holder lives, the taker must not get the lease, however long it waits.
        Assert.Null(taker.TryWaitFor("ACQUIRED", T.HostDeadAfter + T.HostDeadAfter / 2));

        holder.Signal(HostProcess.SigKill);
        var killedAt = DateTimeOffset.UtcNow;
        Assert.True(holder.WaitForExit(TimeSpan.FromSeconds(10)));
        var lastBeat = VmfsInspector.GetHosts(temp.FilePath).Single(h => h.HostName == "esx-a").LastHeartbeat!.Value;

        var acquired = taker.WaitFor("ACQUIRED", T.HostDeadAfter * 4);
        var acquiredAt = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(acquired.Split(' ')[1]));
        // Never before the holder's heartbeat has been stale for hostDeadAfter...
        Assert.True(acquiredAt - lastBeat >= T.HostDeadAfter,
            $"taken over {(acquiredAt - lastBeat).TotalMilliseconds} ms after the holder's last heartbeat; hostDeadAfter is {T.HostDeadAfter.TotalMilliseconds} ms");
        // ...and soon after (one heartbeat interval, plus slack for a loaded test machine).
        Assert.True(acquiredAt - killedAt <= T.HostDeadAfter + T.HeartbeatInterval + TimeSpan.FromSeconds(1),
            $"takeover came {(acquiredAt - killedAt).TotalMilliseconds} ms after the kill");
        // The datastore counts it (vmkerneld exports it as vmkernel_lease_takeovers_total).
        Assert.EndsWith(" takeovers 1", acquired, StringComparison.Ordinal);
        taker.WaitFor("MARKED", TimeSpan.FromSeconds(10));
        taker.Send("exit");
    }

    [Fact]
    public void A_stopped_holder_is_killed_by_its_kill_timer_before_its_lease_can_be_taken()
    {
        using var temp = new TempDatastore();
        // The holder writes every couple of milliseconds, so it is stopped at a random point of its write loop:
        // sometimes between its lease check and the write itself.
        var (holder, taker) = StartHolderAndTaker(temp);
        using var h = holder;
        using var t = taker;

        holder.Signal(HostProcess.SigStop);
        taker.WaitFor("ACQUIRED", T.HostDeadAfter * 4);
        // By the time another host may take its lease, the kernel has killed the stopped holder: a write it was
        // about to make can never land on top of the new owner's.
        Assert.True(holder.IsDead, "the stopped holder was still alive when its lease was taken over");
        taker.WaitFor("MARKED", TimeSpan.FromSeconds(10));
        Assert.True(holder.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.Equal(128 + HostProcess.SigKill, holder.ExitCode);

        var hosts = CheckTakersRecordAndLeave(taker, temp);
        // The killed host's slot stays live-looking until others see it stale, as after any crash.
        Assert.True(hosts.Single(x => x.HostName == "esx-a").Live);
    }

    [Fact]
    public void A_holder_that_loses_its_heartbeat_fences_itself_writes_nothing_more_and_lives_on()
    {
        using var temp = new TempDatastore();
        var (holder, taker) = StartHolderAndTaker(temp);
        using var h = holder;
        using var t = taker;

        holder.Send("lose-heartbeat");
        // The writer may notice the expired deadline before or after the fencing callback runs: either order.
        holder.WaitFor("STANDING-BY", T.FenceAfter * 4);
        Assert.Contains("FENCED no heartbeat renewal", holder.Output);
        Assert.Contains("WRITE-REFUSED", holder.Output);

        taker.WaitFor("ACQUIRED", T.HostDeadAfter * 4);
        taker.WaitFor("MARKED", TimeSpan.FromSeconds(10));
        // The takeover comes later than the holder's kill timer would have fired: having fenced itself with no
        // write in flight, the holder stood the timer down and is still running (vmkerneld keeps serving).
        Assert.False(holder.IsDead, holder.Output);
        holder.Send("exit");
        Assert.True(holder.WaitForExit(TimeSpan.FromSeconds(20)), holder.Output);
        Assert.Equal(0, holder.ExitCode);
        CheckTakersRecordAndLeave(taker, temp);
    }

    /// <summary>
    /// A disk on <paramref name="temp"/>, a holder process writing to it with the datastore opened as vmkerneld
    /// opens it (kill timer on), and a taker process that has joined and waits for the disk's lease.
    /// </summary>
    private static (HostProcess Holder, HostProcess Taker) StartHolderAndTaker(TempDatastore temp)
    {
        using (var ds = temp.Join("setup"))
        {
            ds.CreateDisk("vm.vmdk", 1 << 20);
        }

        var holder = HostProcess.Start("hold", temp.FilePath, "vm.vmdk", "esx-a", "kill-timer");
        HostProcess? taker = null;
        try
        {
            holder.WaitFor("WRITING", TimeSpan.FromSeconds(30));
            taker = HostProcess.Start("take", temp.FilePath, "vm.vmdk", "esx-b");
            taker.WaitFor("JOINED", TimeSpan.FromSeconds(30));
            return (holder, taker);
        }
        catch
        {
            taker?.Dispose();
            holder.Dispose();
            throw;
        }
    }

    /// <summary>The taker's record survived the holder; the taker leaves cleanly. Returns the hosts as left.</summary>
    private static IReadOnlyList<HostInfo> CheckTakersRecordAndLeave(HostProcess taker, TempDatastore temp)
    {
        taker.Send("check");
        Assert.Equal("INTACT", taker.WaitFor("INTACT", TimeSpan.FromSeconds(10)));
        taker.Send("exit");
        Assert.True(taker.WaitForExit(TimeSpan.FromSeconds(10)));
        var hosts = VmfsInspector.GetHosts(temp.FilePath);
        Assert.False(hosts.Single(x => x.HostName == "esx-b").Live);
        return hosts;
    }

    [Fact]
    public void Delete_and_resize_of_a_disk_held_by_another_host_fail_naming_the_holder_and_lease()
    {
        using var temp = new TempDatastore();
        using (var ds = temp.Join("setup"))
        {
            ds.CreateDisk("busy.vmdk", 1 << 20);
        }

        using var holder = HostProcess.Start("hold", temp.FilePath, "busy.vmdk", "esx-holder");
        var acquired = holder.WaitFor("ACQUIRED", TimeSpan.FromSeconds(30));
        var version = acquired.Split(' ')[3];
        using var other = temp.Join("esx-other");
        var delete = Assert.Throws<VmfsException>(() => other.DeleteDisk("busy.vmdk"));
        Assert.Equal(VmfsErrorCode.Locked, delete.Code);
        Assert.Contains("cannot delete disk 'busy.vmdk'", delete.Message);
        Assert.Contains("locked exclusive by host 'esx-holder'", delete.Message);
        Assert.Contains($"lease version {version}", delete.Message);
        var resize = Assert.Throws<VmfsException>(() => other.ResizeDisk("busy.vmdk", 2 << 20));
        Assert.Contains("cannot resize disk 'busy.vmdk'", resize.Message);
        Assert.Contains("esx-holder", resize.Message);
        var open = Assert.Throws<VmfsException>(() => other.OpenDisk("busy.vmdk", LeaseMode.SharedRead));
        Assert.Contains("esx-holder", open.Message);

        var locks = other.GetLocks();
        var busy = locks.Single(l => l.Resource == "busy.vmdk");
        Assert.Equal(LeaseMode.Exclusive, busy.Mode);
        Assert.Equal("esx-holder", busy.OwnerHost);
        Assert.Single(other.List(), d => d.Name == "busy.vmdk");
    }

    [Fact]
    public void Shared_readers_on_several_hosts_exclude_a_writer()
    {
        using var temp = new TempDatastore();
        using var a = temp.Join("esx-a");
        using var b = temp.Join("esx-b");
        a.CreateDisk("iso", 1 << 20);
        using var ra = a.OpenDisk("iso", LeaseMode.SharedRead);
        using var rb = b.OpenDisk("iso", LeaseMode.SharedRead);
        Assert.True(ra.IsReadOnly);
        using var c = temp.Join("esx-c");
        var e = Assert.Throws<VmfsException>(() => c.DeleteDisk("iso"));
        Assert.Contains("open shared-read by host 'esx-", e.Message);
        var local = Assert.Throws<VmfsException>(() => b.DeleteDisk("iso"));
        Assert.Contains("open shared-read on this host ('esx-b'", local.Message);
        var locks = VmfsInspector.GetLocks(temp.FilePath).Single(l => l.Resource == "iso");
        Assert.Equal(LeaseMode.SharedRead, locks.Mode);
        Assert.Equal(["esx-a", "esx-b"], locks.SharedReaders.Order());
    }

    [Fact]
    public void Leaving_releases_every_lease_and_the_heartbeat_slot()
    {
        using var temp = new TempDatastore();
        var ds = temp.Join("esx-a");
        ds.CreateDisk("a", 1 << 20);
        ds.CreateDisk("b", 1 << 20);
        var disk = ds.OpenDisk("a");
        var lease = ds.AcquireLease("b", LeaseMode.SharedRead);
        Assert.Equal(LeaseMode.Exclusive, VmfsInspector.GetLocks(temp.FilePath).Single(l => l.Resource == "a").Mode);
        ds.Dispose();
        Assert.Throws<VmfsException>(() => disk.Write(0, new byte[512], false));
        disk.Dispose();
        lease.Dispose();

        Assert.All(VmfsInspector.GetLocks(temp.FilePath), l => Assert.Equal(LeaseMode.Free, l.Mode));
        Assert.False(Assert.Single(VmfsInspector.GetHosts(temp.FilePath)).Live);
        // Another host gets both at once, without waiting for anything to go stale.
        using var other = temp.Join("esx-b");
        using var again = other.OpenDisk("a");
        other.DeleteDisk("b");
    }
}
