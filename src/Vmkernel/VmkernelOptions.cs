using Vmk.Vmkernel.Qemu.Accel;

namespace Vmk.Vmkernel;

/// <summary>How one host's VMkernel runs.</summary>
public sealed record VmkernelOptions
{
    /// <summary>Holds one directory per VM (spec, pidfile, sockets, logs); re-adoption reads it.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>The QEMU binary, a name looked up on PATH or an absolute path.</summary>
    public string QemuBinary { get; init; } = Qemu.QemuCommandLine.DefaultBinary;

    public AcceleratorMode Accelerator { get; init; } = AcceleratorMode.Auto;

    /// <summary>
    /// The unprivileged user QEMU drops to. Null picks <see cref="DefaultQemuUser"/> when that user exists
    /// (scripts/setup.sh creates it) and otherwise leaves QEMU as the calling user; "" never drops.
    /// </summary>
    public string? QemuUser { get; init; }

    public const string DefaultQemuUser = "vmkernel-qemu";

    public bool Sandbox { get; init; } = true;

    /// <summary>Put each QEMU into a cgroup of its own with the VM's CPU and memory settings.</summary>
    public bool UseCgroups { get; init; } = true;

    /// <summary>How long a guest has to power off after the ACPI power button before it is forced off.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>This host's name in datastore heartbeats and lease records.</summary>
    public string HostName { get; init; } = Environment.MachineName;

    /// <summary>Heartbeat, fencing and takeover timings for the datastores this host mounts (null: VMFS defaults).</summary>
    public Vmfs.VmfsTimings? DatastoreTimings { get; init; }

    /// <summary>
    /// Let the kernel kill this process if it neither renews its datastore heartbeats nor fences itself in time
    /// (Vmfs.FenceKillTimer): vmkerneld turns it on; in-process users (tests, `vmctl vm run`) leave it off.
    /// </summary>
    public bool DatastoreKillTimer { get; init; }

    /// <summary>
    /// How long a VM start waits for a disk lease that a dead host still holds (it is free hostDeadAfter after
    /// that host's last heartbeat). A lease held by a live host fails the start at once.
    /// </summary>
    public TimeSpan DiskLeaseWait { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Issue the vSwitch's kernel requests (bridges, taps, rules, dnsmasq) inside this network namespace
    /// (/run/netns/NAME), where the VMs' QEMUs run too; null = the VMkernel's own namespace. Tests use it for hosts.
    /// </summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>How long QEMU may take to open its QMP socket after it was started.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The address of this host on the migration network: incoming live migrations listen there.</summary>
    public string MigrationAddress { get; init; } = "127.0.0.1";

    /// <summary>Certificates that encrypt live migrations (TLS); null: only migrations with TLS turned off.</summary>
    public Migration.MigrationTlsFiles? MigrationTls { get; init; }
}
