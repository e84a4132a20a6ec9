namespace Vmk.Vmctl.Tests;

/// <summary>`vmctl vm run` as a new user runs it from the README: a real process, a real guest.</summary>
[Collection("qemu")]
public sealed class VmRunTests : IDisposable
{
    private const int SIGINT = 2;
    private const int SIGKILL = 9;
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(90);
    private readonly string _stateDir = Path.Combine("/tmp", $"vmctl-{Guid.NewGuid().ToString("N")[..8]}");
    private readonly List<string> _names = [];

    public void Dispose()
    {
        foreach (var pid in QemuPids())
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill();
                p.WaitForExit();
            }
            catch (ArgumentException)
            {
            }
        }
        if (Directory.Exists(_stateDir))
        {
            Directory.Delete(_stateDir, recursive: true);
        }
        // A failed test may have left a VM's cgroup behind (its QEMU is gone by now, so rmdir succeeds).
        foreach (var cgroup in _names.SelectMany(CgroupsOf))
        {
            try
            {
                Directory.Delete(cgroup);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A VM name unique to this run: a VM's cgroup is machine-wide, and two test runs may share the machine.</summary>
    private string VmName(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid().ToString("N")[..6]}";
        _names.Add(name);
        return name;
    }

    private List<int> QemuPids() => Directory.EnumerateDirectories("/proc")
        .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
        .Where(pid => pid > 0 && Cmdline(pid) is var c && c.Contains("qemu-system", StringComparison.Ordinal) && c.Contains(_stateDir, StringComparison.Ordinal))
        .ToList();

    /// <summary>The VM's cgroup directories (one per cgroup v1 controller here) that still exist.</summary>
    private static List<string> CgroupsOf(string vm)
    {
        // vmctl names a VM's cgroup after the VM and this machine (VmkernelOptions.HostName's default).
        var directory = "vm-" + Vmk.Vmkernel.Resources.VmCgroupNames.For(vm, Environment.MachineName);
        return Directory.Exists("/sys/fs/cgroup")
            ? [.. Directory.EnumerateDirectories("/sys/fs/cgroup")
                .Select(c => Path.Combine(c, Vmk.Vmkernel.Resources.CgroupManagerFactory.DefaultParentName, directory))
                .Where(Directory.Exists)]
            : [];
    }

    private static string Cmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (IOException)
        {
            return "";
        }
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task Run_shows_the_guest_console_and_ctrl_c_stops_the_vm()
    {
        var name = VmName("demo");
        using var vmctl = VmctlProcess.Start("vm", "run", "--name", name, "--accel", "tcg", "--state-dir", _stateDir, "--verbose");

        await vmctl.WaitForStdoutLineAsync(l => l.StartsWith("VMK-GUEST-UP", StringComparison.Ordinal), Boot);
        await vmctl.WaitForStdoutLineAsync(l => l.StartsWith("VMK-TICK", StringComparison.Ordinal), Boot);
        vmctl.Signal(SIGINT);

        Assert.Equal(0, await vmctl.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains($"{name} is Stopped", vmctl.Stderr, StringComparison.Ordinal);
        Assert.Empty(QemuPids());
        Assert.False(Directory.Exists(Path.Combine(_stateDir, "vms", name)), "the VM's state should be removed");
        Assert.Empty(CgroupsOf(name));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_vm_outlives_a_killed_vmctl_and_the_next_vmctl_adopts_it()
    {
        var name = VmName("orphan");
        using (var owner = VmctlProcess.Start("vm", "run", "--name", name, "--accel", "tcg", "--state-dir", _stateDir))
        {
            await owner.WaitForStdoutLineAsync(l => l.StartsWith("VMK-GUEST-UP", StringComparison.Ordinal), Boot);
            owner.Signal(SIGKILL);
            await owner.WaitForExitAsync(TimeSpan.FromSeconds(30));
        }
        var qemu = Assert.Single(QemuPids());

        var (code, stdout, stderr) = await VmctlProcess.RunAsync("vm", "list", "--state-dir", _stateDir);
        Assert.True(code == 0, stderr);
        var row = stdout.Split('\n').Single(l => l.StartsWith(name, StringComparison.Ordinal));
        Assert.Contains("Running", row, StringComparison.Ordinal);
        Assert.Contains(qemu.ToString(System.Globalization.CultureInfo.InvariantCulture), row, StringComparison.Ordinal);

        (code, _, stderr) = await VmctlProcess.RunAsync("vm", "kill", name, "--state-dir", _stateDir);
        Assert.True(code == 0, stderr);
        Assert.Empty(QemuPids());
        Assert.Empty(CgroupsOf(name));
    }

    [Theory]
    [InlineData("--machine", "pc99", "--machine 'pc99': unknown machine type; use microvm or q35")]
    [InlineData("--memory", "0", "memory: 0 bytes is too little")]
    [InlineData("--memory", "lots", "--memory 'lots': give a size such as 256M or 1G")]
    [InlineData("--kernel", "/nonexistent/vmlinux", "boot.kernel: file '/nonexistent/vmlinux' does not exist")]
    [InlineData("--accel", "hvf", "--accel 'hvf': use auto, kvm or tcg")]
    public async Task Bad_flags_name_the_problem_and_leave_nothing_running(string flag, string value, string message)
    {
        string[] accel = flag == "--accel" ? [] : ["--accel", "tcg"];
        var (code, _, stderr) = await VmctlProcess.RunAsync(["vm", "run", "--name", "bad", .. accel, "--state-dir", _stateDir, flag, value]);

        Assert.Equal(1, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.Empty(QemuPids());
    }

    [Fact]
    public async Task A_state_directory_that_cannot_be_written_is_named()
    {
        Directory.CreateDirectory(_stateDir);
        var file = Path.Combine(_stateDir, "file");
        await File.WriteAllTextAsync(file, "");

        var (code, _, stderr) = await VmctlProcess.RunAsync("vm", "run", "--accel", "tcg", "--state-dir", Path.Combine(file, "x"));

        Assert.Equal(1, code);
        Assert.Contains("is not writable", stderr, StringComparison.Ordinal);
    }
}
