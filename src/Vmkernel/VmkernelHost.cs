using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Migration;
using Vmk.Vmkernel.Network;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Resources;
using Vmk.Vmkernel.Storage;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel;

/// <summary>
/// The VMkernel of one host: defines, runs and re-adopts VMs. Opening it on a state directory that a previous
/// instance used picks up every VM found there, running or not. Disposing it lets go of the VMs without
/// stopping them.
/// </summary>
public sealed class VmkernelHost : IAsyncDisposable
{
    private static readonly JsonSerializerOptions SpecJson = new() { WriteIndented = true };

    private readonly ConcurrentDictionary<string, VirtualMachine> _vms = new(StringComparer.Ordinal);
    private readonly VmRuntime _runtime;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _defineGate = new(1, 1);
    private StateDirectoryLock? _stateLock;

    private VmkernelHost(VmkernelOptions options, VmRuntime runtime, AcceleratorChoice accelerator, long memoryBytes, ILogger logger)
    {
        Options = options;
        _runtime = runtime;
        Accelerator = accelerator;
        HostMemoryBytes = memoryBytes;
        _logger = logger;
    }

    public VmkernelOptions Options { get; }

    /// <summary>The accelerator every VM of this host uses, and why it was chosen.</summary>
    public AcceleratorChoice Accelerator { get; }

    public long HostMemoryBytes { get; }

    public string QemuBinary => _runtime.QemuBinary;

    public QemuHostSettings QemuSettings => _runtime.Qemu;

    public IReadOnlyCollection<VirtualMachine> VirtualMachines => _vms.Values.ToList();

    public static async Task<VmkernelHost> OpenAsync(VmkernelOptions options, ILoggerFactory loggerFactory, CancellationToken ct = default)
    {
        var logger = loggerFactory.CreateLogger<VmkernelHost>();
        var qemu = HostEnvironment.ResolveExecutable(options.QemuBinary)
            ?? throw new VmkernelException(
                $"QEMU not found: '{options.QemuBinary}' is not on PATH. Install the Debian package qemu-system-x86 (scripts/setup.sh does it).");
        EnsureWritable(options.StateDirectory);
        var stateLock = StateDirectoryLock.Acquire(options.StateDirectory);
        try
        {
            return await OpenLockedAsync(options, qemu, stateLock, loggerFactory, logger, ct);
        }
        catch
        {
            stateLock.Dispose();
            throw;
        }
    }

    private static async Task<VmkernelHost> OpenLockedAsync(VmkernelOptions options, string qemu, StateDirectoryLock stateLock,
        ILoggerFactory loggerFactory, ILogger logger, CancellationToken ct)
    {
        var accelerator = AcceleratorProbe.Choose(options.Accelerator, logger);
        logger.LogInformation("Accelerator {Accelerator}: {Reason}", accelerator.Accelerator, accelerator.Reason);
        var user = options.QemuUser switch
        {
            null => HostEnvironment.UserExists(VmkernelOptions.DefaultQemuUser) ? VmkernelOptions.DefaultQemuUser : null,
            "" => null,
            var u => HostEnvironment.UserExists(u) ? u : throw new VmkernelException($"QEMU user '{u}' does not exist on this host; create it or leave the setting empty"),
        };
        ICgroupManager? cgroups = null;
        if (options.UseCgroups)
        {
            cgroups = CgroupManagerFactory.Detect(logger);
            logger.LogInformation("VM resource control through {Cgroups}", cgroups.Describe());
        }
        // Checked before anything is started: a bad setting must not leave a listening NBD socket behind.
        var (migrationAddress, migrationTls) = MigrationSettings(options, user);
        VmkernelHost? host = null;
        var storage = new StorageStack(options.StateDirectory, options.HostName, options.DatastoreTimings, options.DatastoreKillTimer, user, loggerFactory,
            (datastore, reason) => host?.Fence(datastore, reason));
        var network = new HostNetwork(
            VSwitch.Open(options.StateDirectory, new ProcessCommandRunner(options.NetworkNamespace), loggerFactory.CreateLogger<VSwitch>()),
            () => host?.VirtualMachines ?? [], loggerFactory.CreateLogger<HostNetwork>());
        var runtime = new VmRuntime(qemu, new QemuHostSettings(accelerator.Accelerator, user, options.Sandbox, HostEnvironment.TscKhz()), cgroups,
            loggerFactory, options.ShutdownTimeout, options.StartTimeout, storage, options.DiskLeaseWait) { Network = network, HostName = options.HostName };
        host = new VmkernelHost(options, runtime, accelerator, HostEnvironment.MemoryBytes(), logger) { _stateLock = stateLock };
        host.Migrations = new LiveMigrations(host, migrationAddress, migrationTls, options.DiskLeaseWait, loggerFactory.CreateLogger<LiveMigrations>());
        storage.RestoreMounts();
        await host.AdoptAllAsync(ct);
        await host.Migrations.DiscardAbandonedIncomingAsync();
        await network.ReleaseStrandedAsync(ct);
        return host;
    }

    /// <summary>The vSwitch: port groups and the taps of this host's VMs on them.</summary>
    public HostNetwork Network => _runtime.Network!;

    /// <summary>Live migrations to and from this host (vMotion with VMFS lease handover).</summary>
    public LiveMigrations Migrations { get; private set; } = null!;

    /// <summary>Datastores and the NBD server that serves their disks to this host's VMs.</summary>
    public StorageStack Storage => _runtime.Storage;

    public VirtualMachine? Find(string name) => _vms.GetValueOrDefault(name);

    public VirtualMachine Get(string name) => Find(name)
        ?? throw new VmkernelException($"no VM named '{name}' on this host");

    /// <summary>
    /// Defines a VM, or updates the spec of a stopped one. The spec is checked first; a spec that cannot run
    /// here is refused with every problem named.
    /// </summary>
    public async Task<VirtualMachine> DefineAsync(VmSpec spec, CancellationToken ct = default)
    {
        var paths = VmPaths.For(Options.StateDirectory, spec.Name);
        spec = HostNetwork.Normalize(spec);
        var errors = VmSpecValidator.Validate(spec, paths, HostMemoryBytes).Concat(Network.Validate(spec)).ToList();
        if (errors.Count > 0)
        {
            throw new VmkernelException($"VM '{spec.Name}' cannot run on this host: " + string.Join("; ", errors));
        }
        await _defineGate.WaitAsync(ct);
        try
        {
            if (_vms.TryGetValue(spec.Name, out var existing))
            {
                if (existing.Spec == spec)
                {
                    return existing;
                }
                if (existing.State is not (VmState.Stopped or VmState.Failed))
                {
                    throw new VmkernelException($"VM '{spec.Name}' is {existing.State}; stop it before changing its spec");
                }
                WriteSpec(paths, spec);
                existing.Spec = spec;
                return existing;
            }
            Directory.CreateDirectory(paths.Directory);
            WriteSpec(paths, spec);
            var vm = new VirtualMachine(spec, paths, _runtime, persisted: null);
            _vms[spec.Name] = vm;
            return vm;
        }
        finally
        {
            _defineGate.Release();
        }
    }

    /// <summary>Removes a stopped VM and its state directory.</summary>
    public async Task DeleteAsync(string name, CancellationToken ct = default)
    {
        var vm = Get(name);
        if (vm.State is not (VmState.Stopped or VmState.Failed))
        {
            throw new VmkernelException($"VM '{name}' is {vm.State}; stop it before deleting it");
        }
        await vm.KillAsync(ct); // a Failed VM whose QEMU still runs but does not answer
        _vms.TryRemove(name, out _);
        await Network.DetachAsync(name);
        await vm.DisposeAsync();
        Directory.Delete(vm.Paths.Directory, recursive: true);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var vm in _vms.Values)
        {
            await vm.DisposeAsync();
        }
        _vms.Clear();
        await _runtime.Storage.DisposeAsync();
        _defineGate.Dispose();
        _stateLock?.Dispose();
    }

    /// <summary>
    /// Self-fencing: this host lost its heartbeat on a datastore, so another host may soon take its leases.
    /// Every VM with a disk there is killed at once (VMFS already refuses this host's writes).
    /// </summary>
    private void Fence(string datastore, string reason)
    {
        foreach (var name in _runtime.Storage.VmsUsing(datastore))
        {
            _logger.LogCritical("Fenced from datastore {Datastore} ({Reason}): killing VM {Vm}", datastore, reason, name);
            _ = Find(name)?.KillAsync();
        }
    }

    private async Task AdoptAllAsync(CancellationToken ct)
    {
        var root = Path.Combine(Options.StateDirectory, "vms");
        if (!Directory.Exists(root))
        {
            return;
        }
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var paths = new VmPaths(dir);
            VmSpec? spec;
            try
            {
                spec = JsonSerializer.Deserialize<VmSpec>(File.ReadAllText(paths.SpecFile));
            }
            catch (Exception e) when (e is IOException or JsonException)
            {
                _logger.LogError("Ignoring {Dir}: its spec.json cannot be read ({Error}); remove the directory if the VM is gone", dir, e.Message);
                continue;
            }
            if (spec is null || spec.Name != Path.GetFileName(dir))
            {
                _logger.LogError("Ignoring {Dir}: spec.json does not describe a VM of that name", dir);
                continue;
            }
            var vm = new VirtualMachine(spec, paths, _runtime, VirtualMachine.ReadPersistedStatus(paths));
            await vm.AdoptAsync(ct);
            _vms[spec.Name] = vm;
        }
    }

    private static (System.Net.IPAddress Address, string? TlsDirectory) MigrationSettings(VmkernelOptions options, string? qemuUser)
    {
        if (!System.Net.IPAddress.TryParse(options.MigrationAddress, out var address))
        {
            throw new VmkernelException($"migration address '{options.MigrationAddress}' is not an IP address; give this host's address on the migration network");
        }
        var tls = options.MigrationTls is { } files ? MigrationTlsDirectory.Install(files, options.StateDirectory, qemuUser) : null;
        return (address, tls);
    }

    private static void WriteSpec(VmPaths paths, VmSpec spec)
    {
        var tmp = paths.SpecFile + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(spec, SpecJson));
        File.Move(tmp, paths.SpecFile, overwrite: true);
    }

    private static void EnsureWritable(string directory)
    {
        try
        {
            Directory.CreateDirectory(directory);
            var probe = Path.Combine(directory, $".write-probe-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmkernelException(
                $"state directory '{directory}' is not writable ({e.Message}); run as root or choose another with --state-dir", e);
        }
    }
}
