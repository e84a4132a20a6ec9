using Vmk.Vmkernel.Qemu.Accel;

namespace Vmk.Vmkernel.Tests.Qemu.Accel;

public sealed class AcceleratorProbeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vmk-accel-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private AcceleratorProbeOptions Options(string? devicePath = null) => new()
    {
        DevicePath = devicePath ?? "/dev/kvm",
        CachePath = Path.Combine(_directory, "run", "accel-probe.json"),
    };

    private string RegularFileThatIsNoKvm()
    {
        var path = Path.Combine(_directory, "not-kvm");
        File.WriteAllText(path, "");
        return path;
    }

    [Fact]
    public void Auto_on_this_host_picks_TCG_and_names_what_it_found()
    {
        // The hosts this project is tested on have either no /dev/kvm or one that emulates guest code
        // (~1 M instructions/s); either way a Linux guest only boots under TCG.
        var choice = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, Options());

        Assert.Equal(Accelerator.Tcg, choice.Accelerator);
        if (File.Exists("/dev/kvm"))
        {
            Assert.Matches(@"KVM executes guest code at ~[0-9.]+ M instructions/s \(emulated|did not finish|failed", choice.Reason);
        }
        else
        {
            Assert.Equal("/dev/kvm does not exist (the host kernel offers no KVM); using TCG", choice.Reason);
        }
    }

    [Fact]
    public void Auto_with_a_missing_device_uses_TCG_and_says_the_device_is_missing()
    {
        var missing = Path.Combine(_directory, "no-such-kvm");

        var choice = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, Options(missing));

        Assert.Equal(Accelerator.Tcg, choice.Accelerator);
        Assert.Equal($"{missing} does not exist (the host kernel offers no KVM); using TCG", choice.Reason);
        Assert.False(File.Exists(Options().CachePath), "a missing device is cheap to detect and must not be cached");
    }

    [Fact]
    public void Auto_with_a_device_that_rejects_the_KVM_ioctls_uses_TCG_with_the_failing_ioctl_named()
    {
        var choice = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, Options(RegularFileThatIsNoKvm()));

        Assert.Equal(Accelerator.Tcg, choice.Accelerator);
        Assert.Contains("is not a KVM device (KVM_GET_API_VERSION failed: errno 25", choice.Reason);
        Assert.EndsWith("; using TCG", choice.Reason);
    }

    [Fact]
    public void A_probe_result_is_cached_for_this_boot_and_reused()
    {
        var device = RegularFileThatIsNoKvm();
        var options = Options(device);

        var first = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, options);
        var second = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, options);

        Assert.DoesNotContain("cached", first.Reason);
        Assert.Equal(first.Accelerator, second.Accelerator);
        Assert.StartsWith(first.Reason, second.Reason);
        Assert.Contains("(cached: measured at ", second.Reason);
        var cacheText = File.ReadAllText(options.CachePath);
        Assert.Contains(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), cacheText);
        Assert.Contains(device, cacheText);
    }

    [Fact]
    public void A_cache_entry_from_another_boot_is_ignored_and_replaced()
    {
        var options = Options(RegularFileThatIsNoKvm());
        AcceleratorProbe.Choose(AcceleratorMode.Auto, null, options);
        var bootIdFile = Path.Combine(_directory, "boot_id");
        File.WriteAllText(bootIdFile, "00000000-1111-2222-3333-444444444444\n");
        var afterReboot = options with { BootIdPath = bootIdFile };

        var choice = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, afterReboot);

        Assert.DoesNotContain("cached", choice.Reason);
        Assert.Contains("00000000-1111-2222-3333-444444444444", File.ReadAllText(options.CachePath));
    }

    [Fact]
    public void A_corrupt_cache_file_is_ignored_and_rewritten()
    {
        var options = Options(RegularFileThatIsNoKvm());
        Directory.CreateDirectory(Path.GetDirectoryName(options.CachePath)!);
        File.WriteAllText(options.CachePath, "{ this is not json");

        var choice = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, options);

        Assert.Equal(Accelerator.Tcg, choice.Accelerator);
        Assert.DoesNotContain("cached", choice.Reason);
        Assert.Contains("\"bootId\"", File.ReadAllText(options.CachePath));
    }

    [Fact]
    public void An_unwritable_cache_location_does_not_stop_the_probe()
    {
        var blocker = Path.Combine(_directory, "a-file");
        File.WriteAllText(blocker, "");
        var options = Options(RegularFileThatIsNoKvm()) with { CachePath = Path.Combine(blocker, "accel-probe.json") };

        var choice = AcceleratorProbe.Choose(AcceleratorMode.Auto, null, options);

        Assert.Equal(Accelerator.Tcg, choice.Accelerator);
        Assert.Contains("KVM_GET_API_VERSION", choice.Reason);
    }

    [Fact]
    public void Forced_TCG_is_TCG_by_configuration()
    {
        var choice = AcceleratorProbe.Choose(AcceleratorMode.Tcg);

        Assert.Equal(new AcceleratorChoice(Accelerator.Tcg, "forced by configuration"), choice);
    }

    [Fact]
    public void Forced_KVM_without_a_device_is_a_clear_error()
    {
        var missing = Path.Combine(_directory, "no-such-kvm");

        var error = Assert.Throws<AcceleratorUnavailableException>(() => AcceleratorProbe.Choose(AcceleratorMode.Kvm, null, Options(missing)));

        Assert.Contains($"accelerator 'kvm' is forced by configuration, but {missing} does not exist", error.Message);
        Assert.Contains("Use accelerator 'auto' or 'tcg'", error.Message);
    }

    [Fact]
    public void Forced_KVM_on_a_device_that_is_no_KVM_is_a_clear_error()
    {
        var error = Assert.Throws<AcceleratorUnavailableException>(() => AcceleratorProbe.Choose(AcceleratorMode.Kvm, null, Options(RegularFileThatIsNoKvm())));

        Assert.Contains("is not a KVM device", error.Message);
    }

    [Fact]
    public void QEMU_accel_names()
    {
        Assert.Equal("kvm", AcceleratorProbe.QemuAccelName(Accelerator.Kvm));
        Assert.Equal("tcg", AcceleratorProbe.QemuAccelName(Accelerator.Tcg));
    }
}
