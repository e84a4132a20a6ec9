namespace Vmk.Vmkernel.Migration;

/// <summary>How one live migration runs (the VirtualMachineMigration's policy).</summary>
public sealed record MigrationPolicy
{
    /// <summary>QEMU 7.2's max-bandwidth when nobody set it.</summary>
    public const long QemuDefaultBandwidth = 128L << 20;

    /// <summary>QEMU 7.2's downtime-limit when nobody set it.</summary>
    public static readonly TimeSpan QemuDefaultDowntimeLimit = TimeSpan.FromMilliseconds(300);

    /// <summary>QEMU's max-bandwidth in bytes per second; 0 means QEMU's default (<see cref="QemuDefaultBandwidth"/>).</summary>
    public long BandwidthBytesPerSecond { get; init; }

    /// <summary>The longest pause the last iteration may cost the guest; zero means QEMU's default (<see cref="QemuDefaultDowntimeLimit"/>).</summary>
    public TimeSpan DowntimeLimit { get; init; }

    /// <summary>Throttle the guest's vCPUs when its memory dirties faster than the link carries it.</summary>
    public bool AutoConverge { get; init; }

    /// <summary>Encrypt the migration stream (TLS with mutual certificate checks). On unless turned off explicitly.</summary>
    public bool Tls { get; init; } = true;

    /// <summary>A migration whose transferred bytes have not grown for this long is cancelled (a cut network, a hung target).</summary>
    public TimeSpan NoProgressTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The whole migration may take at most this long before it is cancelled; infinite when zero.</summary>
    public TimeSpan Timeout { get; init; }
}
