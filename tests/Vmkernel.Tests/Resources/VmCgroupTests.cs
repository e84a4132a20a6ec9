using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

/// <summary>Against the real cgroups of this machine (a v1/v2 hybrid whose controllers are on v1).</summary>
public sealed class VmCgroupTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private const long MiB = 1024 * 1024;

    private readonly CgroupTestHost _host = new();

    public void Dispose() => _host.Dispose();

    private bool IsV1 => _host.Manager.Driver is CgroupV1Driver;

    private static string ReadFile(VmCgroup cgroup, string file) =>
        File.ReadAllText(cgroup.Directories.Select(directory => Path.Combine(directory, file)).First(File.Exists)).Trim();

    [Fact]
    public void This_host_gets_a_cgroup_version_whose_controllers_are_really_usable()
    {
        var description = _host.Manager.Describe();

        Assert.StartsWith("cgroup v", description);
        var v2Controllers = File.Exists("/sys/fs/cgroup/unified/cgroup.controllers")
            ? File.ReadAllText("/sys/fs/cgroup/unified/cgroup.controllers")
            : File.ReadAllText("/sys/fs/cgroup/cgroup.controllers");
        if (!v2Controllers.Contains("cpu", StringComparison.Ordinal))
        {
            Assert.Equal("cgroup v1 (cpu; cpuacct; memory)", description);
        }
    }

    [Fact]
    public void Create_applies_shares_CPU_limit_memory_limit_and_reservation()
    {
        var resources = new VmResources(CpuShares.ForLevel(SharesLevel.High, 2), CpuLimitMillicores: 1500,
            MemoryLimitBytes: 256 * MiB, MemoryReservationBytes: 128 * MiB);

        var cgroup = _host.Create(CgroupTestHost.NewVmId(), resources);

        Assert.All(cgroup.Directories, directory => Assert.True(Directory.Exists(directory), directory));
        Assert.All(cgroup.Directories, directory => Assert.Contains($"/{_host.ParentName}/vm-{cgroup.VmId}", directory));
        if (IsV1)
        {
            Assert.Equal("4096", ReadFile(cgroup, "cpu.shares"));          // 2 vCPUs x 2000 ESXi shares
            Assert.Equal("100000", ReadFile(cgroup, "cpu.cfs_period_us"));
            Assert.Equal("150000", ReadFile(cgroup, "cpu.cfs_quota_us"));  // 1.5 cores
            Assert.Equal((256 * MiB).ToString(), ReadFile(cgroup, "memory.limit_in_bytes"));
            Assert.Equal((128 * MiB).ToString(), ReadFile(cgroup, "memory.soft_limit_in_bytes"));
        }
        else
        {
            Assert.Equal("400", ReadFile(cgroup, "cpu.weight"));
            Assert.Equal("150000 100000", ReadFile(cgroup, "cpu.max"));
            Assert.Equal((256 * MiB).ToString(), ReadFile(cgroup, "memory.max"));
            Assert.Equal((128 * MiB).ToString(), ReadFile(cgroup, "memory.min"));
        }
    }

    [Fact]
    public void Create_again_is_idempotent_and_applies_the_new_settings()
    {
        var vmId = CgroupTestHost.NewVmId();
        _host.Create(vmId, VmResources.Default(1));

        var again = _host.Create(vmId, new VmResources(CpuShares.ForLevel(SharesLevel.Low, 1), CpuLimitMillicores: 250));

        Assert.Equal(IsV1 ? "512" : "50", ReadFile(again, IsV1 ? "cpu.shares" : "cpu.weight"));
        Assert.Equal(IsV1 ? "25000" : "25000 100000", ReadFile(again, IsV1 ? "cpu.cfs_quota_us" : "cpu.max"));
    }

    [Fact]
    public void A_started_process_added_by_pid_is_in_the_VM_cgroup()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1));
        var sleeper = _host.Start("exec sleep 600");

        cgroup.AddProcess(sleeper.Id);

        Assert.Contains(sleeper.Id, cgroup.Processes());
        var membership = File.ReadAllText($"/proc/{sleeper.Id}/cgroup");
        Assert.Contains($"/{_host.ParentName}/vm-{cgroup.VmId}", membership);
    }

    [Fact]
    public void A_process_that_writes_itself_into_the_procs_files_before_exec_runs_in_the_cgroup()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1));

        var process = _host.StartInCgroup(cgroup, "exec sleep 600");

        Poll.Until(cgroup.Processes, pids => pids.Contains(process.Id), Deadline, "the launched process joining the cgroup");
        foreach (var procs in cgroup.ProcsFiles)
        {
            Assert.Contains(process.Id.ToString(), File.ReadAllLines(procs));
        }
    }

    [Fact]
    public void Adding_a_process_that_does_not_exist_is_a_clear_error()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1));
        var gone = _host.Start("exit 0");
        gone.WaitForExit();

        var error = Assert.Throws<CgroupException>(() => cgroup.AddProcess(gone.Id));

        Assert.Contains($"process {gone.Id} does not exist", error.Message);
    }

    [Fact]
    public void A_CPU_limit_of_100_millicores_throttles_a_busy_loop_to_a_tenth_of_a_core()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1) with { CpuLimitMillicores = 100 });

        var busy = _host.StartInCgroup(cgroup, "while :; do :; done");

        // 20 CFS periods of 100 ms in which the loop wanted to run: 2 s of its life.
        var usage = Poll.Until(cgroup.ReadUsage, u => u.CpuPeriods >= 20, Deadline, "20 CPU periods of the busy loop");
        Assert.False(busy.HasExited);
        Assert.True(usage.CpuThrottledPeriods >= usage.CpuPeriods / 2,
            $"a busy loop limited to 100m is throttled in most periods, got {usage.CpuThrottledPeriods} of {usage.CpuPeriods}");
        var allowed = TimeSpan.FromMilliseconds(10 * usage.CpuPeriods);
        Assert.True(usage.CpuTime <= allowed * 1.5 + TimeSpan.FromMilliseconds(50),
            $"a busy loop limited to 100m used {usage.CpuTime.TotalMilliseconds} ms of CPU in {usage.CpuPeriods} periods of 100 ms (allowed ~{allowed.TotalMilliseconds} ms)");
        Assert.True(usage.CpuThrottledTime > TimeSpan.Zero);
    }

    [Fact]
    public void A_process_exceeding_the_memory_limit_is_stopped_by_the_kernel()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1) with { MemoryLimitBytes = 32 * MiB });

        // dd fills a 64 MiB buffer from /dev/zero: twice the limit, and this host has no swap to spill to.
        var hog = _host.StartInCgroup(cgroup, "exec dd if=/dev/zero of=/dev/null bs=64M count=1");

        Assert.True(hog.WaitForExit(Deadline), "dd neither finished nor was stopped");
        Assert.Equal(128 + 9, hog.ExitCode); // SIGKILL from the cgroup's OOM killer
        Assert.True(cgroup.ReadUsage().MemoryBytes <= 32 * MiB);
        if (IsV1)
        {
            Assert.NotEqual("0", ReadFile(cgroup, "memory.failcnt"));
        }
        else
        {
            Assert.Contains("oom_kill 1", ReadFile(cgroup, "memory.events"));
        }
    }

    [Fact]
    public void Update_changes_the_limits_of_a_running_VM_and_removing_a_limit_lifts_it()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1));
        var limited = new VmResources(CpuShares.Custom(3000), CpuLimitMillicores: 500, MemoryLimitBytes: 64 * MiB);

        cgroup.Update(limited);

        Assert.Equal(IsV1 ? "3072" : "300", ReadFile(cgroup, IsV1 ? "cpu.shares" : "cpu.weight"));
        Assert.Equal(IsV1 ? "50000" : "50000 100000", ReadFile(cgroup, IsV1 ? "cpu.cfs_quota_us" : "cpu.max"));
        Assert.Equal((64 * MiB).ToString(), ReadFile(cgroup, IsV1 ? "memory.limit_in_bytes" : "memory.max"));

        cgroup.Update(VmResources.Default(1));

        Assert.Equal(IsV1 ? "-1" : "max 100000", ReadFile(cgroup, IsV1 ? "cpu.cfs_quota_us" : "cpu.max"));
        var memoryLimit = ReadFile(cgroup, IsV1 ? "memory.limit_in_bytes" : "memory.max");
        Assert.True(memoryLimit == "max" || long.Parse(memoryLimit) > 1L << 50, $"memory limit still {memoryLimit}");
    }

    [Fact]
    public void Delete_waits_for_the_processes_to_be_gone_then_removes_the_directories()
    {
        var cgroup = _host.Create(CgroupTestHost.NewVmId(), VmResources.Default(1));
        var process = _host.StartInCgroup(cgroup, "exec sleep 600");
        Poll.Until(cgroup.Processes, pids => pids.Contains(process.Id), Deadline, "the process joining the cgroup");

        Assert.False(cgroup.Delete());
        Assert.All(cgroup.Directories, directory => Assert.True(Directory.Exists(directory)));

        CgroupTestHost.Kill(process);

        Assert.True(cgroup.Delete());
        Assert.All(cgroup.Directories, directory => Assert.False(Directory.Exists(directory)));
        Assert.True(cgroup.Delete(), "deleting an already removed cgroup is fine");
        Assert.Null(_host.Manager.Open(cgroup.VmId));
    }

    [Fact]
    public void Open_finds_an_existing_VM_cgroup_for_re_adoption()
    {
        var vmId = CgroupTestHost.NewVmId();
        var created = _host.Create(vmId, VmResources.Default(1));
        var process = _host.StartInCgroup(created, "exec sleep 600");
        Poll.Until(created.Processes, pids => pids.Contains(process.Id), Deadline, "the process joining the cgroup");

        var reopened = _host.Manager.Open(vmId);

        Assert.NotNull(reopened);
        Assert.Equal(created.Directories, reopened.Directories);
        Assert.Contains(process.Id, reopened.Processes());
        Assert.Null(_host.Manager.Open(CgroupTestHost.NewVmId()));
    }

    [Fact]
    public void A_VM_id_that_cannot_name_a_cgroup_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => _host.Manager.Create("../escape", VmResources.Default(1)));

        Assert.Contains("VM id '../escape' cannot name a cgroup", error.Message);
    }

    [Fact]
    public void Settings_that_contradict_each_other_are_refused_before_any_cgroup_exists()
    {
        var vmId = CgroupTestHost.NewVmId();
        var contradictory = VmResources.Default(1) with { MemoryLimitBytes = 64 * MiB, MemoryReservationBytes = 128 * MiB };

        var error = Assert.Throws<ArgumentException>(() => _host.Manager.Create(vmId, contradictory));

        Assert.Contains("memory reservation 128 MiB exceeds the memory limit 64 MiB", error.Message);
        Assert.Null(_host.Manager.Open(vmId));
    }

    [Fact]
    public void Settings_the_kernel_rejects_leave_no_half_made_cgroup_behind()
    {
        var vmId = CgroupTestHost.NewVmId();
        // Passes validation but not the kernel: a quota of 10^14 us per 100 ms period is above the
        // kernel's maximum CFS runtime (2^44 us), so the cpu write fails after the directories exist.
        var tooMuch = VmResources.Default(1) with { CpuLimitMillicores = 1_000_000_000_000 };

        Assert.Throws<CgroupException>(() => _host.Manager.Create(vmId, tooMuch));

        Assert.Null(_host.Manager.Open(vmId));
        Assert.All(_host.Manager.Driver.Directories(vmId), directory => Assert.False(Directory.Exists(directory)));
    }
}
