namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>
/// Where the probe looks and how long it may take. Production uses the defaults; tests point the device
/// and the cache elsewhere (a device path that does not exist, a regular file that is no KVM device, a
/// cache file in a temporary directory).
/// </summary>
internal sealed record AcceleratorProbeOptions
{
    public string DevicePath { get; init; } = "/dev/kvm";

    /// <summary>Per-boot cache; /run is a tmpfs, so it disappears with the boot it describes.</summary>
    public string CachePath { get; init; } = "/run/vmkernel/accel-probe.json";

    public string BootIdPath { get; init; } = "/proc/sys/kernel/random/boot_id";

    /// <summary>
    /// Upper bound for the guest-loop measurement (plus 20 ms grace for a KVM_RUN that never returns), so
    /// the probe stays under 100 ms even on a pathological KVM; at hardware speed the loop needs ~10 ms,
    /// an emulated KVM is identified by its first 2,001-instruction run.
    /// </summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromMilliseconds(60);

    /// <summary>
    /// Hardware-speed KVM runs this loop at billions of instructions per second and emulated KVM at about
    /// one million; anything under a hundred million is not hardware speed.
    /// </summary>
    public double HardwareSpeedInstructionsPerSecond { get; init; } = 100e6;
}
