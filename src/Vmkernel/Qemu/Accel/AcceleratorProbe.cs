using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Interop;

namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>
/// Decides between KVM and TCG. A /dev/kvm that opens is not enough: some hosts expose a KVM that
/// executes guest code by emulation (about a million instructions per second), on which a Linux guest
/// never boots, while TCG boots it in seconds. So <see cref="AcceleratorMode.Auto"/> runs a tiny guest
/// through KVM (<see cref="KvmGuestLoop"/>) and uses KVM only at hardware speed. The measurement is
/// cached per host boot; whatever goes wrong ends in TCG with the reason, never in an exception.
/// </summary>
public static class AcceleratorProbe
{
    public static AcceleratorChoice Choose(AcceleratorMode mode, ILogger? logger = null) =>
        Choose(mode, logger, new AcceleratorProbeOptions());

    /// <summary>The value of QEMU's <c>accel=</c> machine property.</summary>
    public static string QemuAccelName(Accelerator a) => a switch
    {
        Accelerator.Kvm => "kvm",
        Accelerator.Tcg => "tcg",
        _ => throw new ArgumentOutOfRangeException(nameof(a), a, "unknown accelerator"),
    };

    internal static AcceleratorChoice Choose(AcceleratorMode mode, ILogger? logger, AcceleratorProbeOptions options)
    {
        var choice = mode switch
        {
            AcceleratorMode.Tcg => new AcceleratorChoice(Accelerator.Tcg, "forced by configuration"),
            AcceleratorMode.Kvm => ForceKvm(options),
            AcceleratorMode.Auto => Probe(logger, options),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown accelerator mode: use auto, kvm or tcg"),
        };
        logger?.LogInformation("Accelerator {Accelerator} (mode {Mode}): {Reason}", QemuAccelName(choice.Accelerator), mode, choice.Reason);
        return choice;
    }

    private static AcceleratorChoice ForceKvm(AcceleratorProbeOptions options)
    {
        var fd = Libc.Open(options.DevicePath, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            throw new AcceleratorUnavailableException(
                $"accelerator 'kvm' is forced by configuration, but {DescribeOpenFailure(options.DevicePath, Marshal.GetLastPInvokeError())}. " +
                "Use accelerator 'auto' or 'tcg' on this host, or make KVM available.");
        }

        try
        {
            var version = Libc.Ioctl(fd, KvmGuestLoop.KVM_GET_API_VERSION, 0);
            if (version != KvmGuestLoop.ExpectedApiVersion)
            {
                throw new AcceleratorUnavailableException(
                    $"accelerator 'kvm' is forced by configuration, but {DescribeApiFailure(options.DevicePath, version, Marshal.GetLastPInvokeError())}. " +
                    "Use accelerator 'auto' or 'tcg' on this host.");
            }

            return new AcceleratorChoice(Accelerator.Kvm, $"forced by configuration ({options.DevicePath} opened, KVM API {version}; guest speed not measured)");
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    private static AcceleratorChoice Probe(ILogger? logger, AcceleratorProbeOptions options)
    {
        // Opening is cheap and its outcome can change within a boot (a permission fixed, a module
        // loaded), so it is never cached; only what KVM does once it is open is.
        var fd = Libc.Open(options.DevicePath, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            return Tcg(DescribeOpenFailure(options.DevicePath, Marshal.GetLastPInvokeError()));
        }

        var fdOwnedHere = true;
        try
        {
            var bootId = ReadBootId(options.BootIdPath, logger);
            var cache = new AcceleratorProbeCache(options.CachePath, logger);
            if (bootId is not null && cache.TryRead(bootId, options.DevicePath) is { } cached)
            {
                return new AcceleratorChoice(cached.Accelerator,
                    $"{cached.Reason} (cached: measured at {cached.ProbedAtUtc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC in this host boot)");
            }

            var version = Libc.Ioctl(fd, KvmGuestLoop.KVM_GET_API_VERSION, 0);
            AcceleratorChoice choice;
            double? speed = null;
            var cacheable = true;
            if (version != KvmGuestLoop.ExpectedApiVersion)
            {
                var errno = Marshal.GetLastPInvokeError();
                choice = Tcg(DescribeApiFailure(options.DevicePath, version, errno));
                cacheable = errno is not (Libc.EINTR or Libc.EAGAIN);
            }
            else
            {
                fdOwnedHere = false;
                var measurement = MeasureWithDeadline(fd, options, logger);
                speed = measurement.InstructionsPerSecond;
                cacheable = !measurement.Transient;
                choice = Decide(measurement, options);
            }

            if (bootId is not null && cacheable)
            {
                cache.Write(new AcceleratorProbeCacheEntry(bootId, options.DevicePath, choice.Accelerator, choice.Reason, speed, DateTime.UtcNow));
            }

            return choice;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The probe exists to keep VMs starting; an unforeseen failure inside it must not stop them.
            logger?.LogWarning(e, "Accelerator probe failed unexpectedly; using TCG");
            return Tcg($"the KVM probe failed unexpectedly ({e.Message})");
        }
        finally
        {
            if (fdOwnedHere)
            {
                Libc.Close(fd);
            }
        }
    }

    /// <summary>
    /// Runs the guest loop on its own thread, which owns (and closes) the /dev/kvm descriptor. If KVM_RUN
    /// does not come back by the deadline the caller moves on with TCG; the thread finishes and frees
    /// its VM whenever KVM lets it, without holding anyone up.
    /// </summary>
    private static KvmMeasurement MeasureWithDeadline(int kvmFd, AcceleratorProbeOptions options, ILogger? logger)
    {
        var deadline = DateTime.UtcNow + options.Deadline;
        var abandoned = 0;
        var finished = new TaskCompletionSource<KvmMeasurement>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                finished.TrySetResult(KvmGuestLoop.Measure(kvmFd, options.DevicePath, deadline, () => Volatile.Read(ref abandoned) != 0));
            }
            catch (Exception e)
            {
                finished.TrySetResult(new KvmMeasurement(null, 0, TimeSpan.Zero, $"the KVM test guest failed ({e.Message})", true));
            }
            finally
            {
                Libc.Close(kvmFd);
            }
        })
        {
            IsBackground = true,
            Name = "kvm-speed-probe",
        };
        thread.Start();

        // A little slack over the deadline: the loop itself stops escalating before it; this only
        // catches a KVM_RUN that does not return at all.
        if (finished.Task.Wait(options.Deadline + TimeSpan.FromMilliseconds(20)))
        {
            return finished.Task.Result;
        }

        Volatile.Write(ref abandoned, 1);
        logger?.LogWarning("KVM test guest on {Device} did not finish within {Deadline} ms", options.DevicePath, options.Deadline.TotalMilliseconds);
        return new KvmMeasurement(null, 0, options.Deadline, null, false);
    }

    private static AcceleratorChoice Decide(KvmMeasurement measurement, AcceleratorProbeOptions options)
    {
        if (measurement.Failure is not null)
        {
            return Tcg(measurement.Failure);
        }

        if (measurement.InstructionsPerSecond is not { } speed)
        {
            return Tcg($"the KVM test guest ({options.DevicePath}) did not finish a few thousand instructions within " +
                       $"{options.Deadline.TotalMilliseconds:0} ms, so KVM executes guest code far below hardware speed (emulated)");
        }

        var figure = FormatMips(speed);
        if (speed >= options.HardwareSpeedInstructionsPerSecond)
        {
            return new AcceleratorChoice(Accelerator.Kvm,
                $"KVM executes guest code at ~{figure} M instructions/s (hardware speed); using KVM");
        }

        return Tcg($"KVM executes guest code at ~{figure} M instructions/s (emulated; hardware speed is at least " +
                   $"{FormatMips(options.HardwareSpeedInstructionsPerSecond)} M)");
    }

    private static AcceleratorChoice Tcg(string why) => new(Accelerator.Tcg, $"{why}; using TCG");

    private static string FormatMips(double instructionsPerSecond)
    {
        var mips = instructionsPerSecond / 1e6;
        return mips < 10
            ? mips.ToString("0.0#", CultureInfo.InvariantCulture)
            : mips.ToString("0", CultureInfo.InvariantCulture);
    }

    private static string DescribeOpenFailure(string devicePath, int errno) => errno switch
    {
        Libc.ENOENT => $"{devicePath} does not exist (the host kernel offers no KVM)",
        Libc.EACCES or Libc.EPERM => $"{devicePath} cannot be opened: permission denied (run as root or join the group that owns it, usually 'kvm')",
        Libc.ENODEV or Libc.ENXIO => $"{devicePath} exists but no KVM driver answers it ({Libc.Describe(errno)})",
        _ => $"{devicePath} cannot be opened ({Libc.Describe(errno)})",
    };

    private static string DescribeApiFailure(string devicePath, int version, int errno) => version < 0
        ? $"{devicePath} is not a KVM device (KVM_GET_API_VERSION failed: {Libc.Describe(errno)})"
        : $"{devicePath} speaks KVM API {version}, not {KvmGuestLoop.ExpectedApiVersion}";

    private static string? ReadBootId(string path, ILogger? logger)
    {
        try
        {
            var id = File.ReadAllText(path).Trim();
            return id.Length > 0 ? id : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger?.LogDebug("Cannot read the boot id from {Path} ({Error}); the probe result is not cached", path, e.Message);
            return null;
        }
    }
}
