using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Nbd;
using Vmk.Vmkernel.Vm;
using Vmk.Vmkernel.Vmfs;
using AttachedDisk = (string Export, Vmk.Vmkernel.Vmfs.VirtualDisk Disk, string Datastore, Vmk.Vmkernel.Storage.LeaseGatedDisk Gate);

namespace Vmk.Vmkernel.Storage;

/// <summary>
/// The host's storage I/O stack: the datastores it has mounted and the one NBD server through which every VM
/// disk on them reaches QEMU. A VM's datastore disks are opened under this host's lease (exclusive, or
/// shared-read for read-only disks such as clone bases) when the VM starts and released when its QEMU exits,
/// so the lease always names the host whose QEMU can write.
/// </summary>
public sealed class StorageStack : IAsyncDisposable
{
    private static readonly JsonSerializerOptions MountsJson = new() { WriteIndented = true };

    private readonly ConcurrentDictionary<string, MountedDatastore> _datastores = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, List<AttachedDisk>> _attached = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, List<(string Export, LeaseGatedDisk Gate, DiskSpec Spec)>> _incoming = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly string _mountsFile;
    private readonly string _hostName;
    private readonly VmfsTimings? _timings;
    private readonly bool _killTimer;
    private readonly ILogger _logger;
    private readonly Action<string, string> _onFenced;

    internal StorageStack(string stateDirectory, string hostName, VmfsTimings? timings, bool killTimer, string? qemuUser, ILoggerFactory loggerFactory, Action<string, string> onFenced)
    {
        _killTimer = killTimer;
        _mountsFile = Path.Combine(stateDirectory, "datastores.json");
        _hostName = hostName;
        _timings = timings;
        _logger = loggerFactory.CreateLogger<StorageStack>();
        _onFenced = onFenced;
        NbdSocket = Path.Combine(stateDirectory, "nbd.sock");
        Nbd = new NbdServer(loggerFactory: loggerFactory);
        File.Delete(NbdSocket);
        Nbd.ListenUnix(NbdSocket);
        RestrictToQemu(NbdSocket, qemuUser);
    }

    /// <summary>The unix socket every local QEMU reaches its disks through.</summary>
    public string NbdSocket { get; }

    public NbdServer Nbd { get; }

    public IReadOnlyCollection<MountedDatastore> Datastores => _datastores.Values.ToList();

    /// <summary>
    /// Joins a datastore. With <paramref name="formatIfBlank"/> a device whose first MiB is all zeros is
    /// formatted first; a device holding anything else is never formatted.
    /// </summary>
    public MountedDatastore Mount(string name, string devicePath, bool formatIfBlank = false, FormatOptions? format = null)
    {
        lock (_gate)
        {
            if (_datastores.TryGetValue(name, out var existing))
            {
                return existing.DevicePath == devicePath ? existing
                    : throw new VmkernelException($"datastore '{name}' is already mounted from {existing.DevicePath}; unmount it before mounting {devicePath}");
            }
            if (!File.Exists(devicePath))
            {
                throw new VmkernelException($"datastore '{name}': device {devicePath} does not exist on this host");
            }
            if (formatIfBlank && IsBlank(devicePath))
            {
                _logger.LogInformation("Formatting blank device {Device} as datastore {Datastore}", devicePath, name);
                VmfsDatastore.Format(devicePath, (format ?? new FormatOptions()) with { Label = name }, _logger);
            }
            VmfsDatastore ds;
            try
            {
                ds = VmfsDatastore.Open(devicePath, _hostName, _timings, _logger, reason => _onFenced(name, reason), _killTimer);
            }
            catch (VmfsException e)
            {
                throw new VmkernelException($"datastore '{name}' cannot be mounted from {devicePath}: {e.Message}", e);
            }
            var mount = new MountedDatastore(name, devicePath, ds);
            _datastores[name] = mount;
            SaveMounts();
            _logger.LogInformation("Mounted datastore {Datastore} from {Device}", name, devicePath);
            return mount;
        }
    }

    /// <summary>Leaves a datastore; refused while a VM of this host has a disk open on it.</summary>
    public void Unmount(string name)
    {
        lock (_gate)
        {
            if (!_datastores.TryGetValue(name, out var mount))
            {
                return;
            }
            var users = VmsUsing(name);
            if (users.Count > 0)
            {
                throw new VmkernelException($"datastore '{name}' is in use by VM(s) {string.Join(", ", users)}; stop them first");
            }
            mount.Datastore.Dispose();
            _datastores.TryRemove(name, out _);
            SaveMounts();
        }
    }

    public MountedDatastore GetDatastore(string name) => _datastores.TryGetValue(name, out var m) ? m
        : throw new VmkernelException($"datastore '{name}' is not mounted on this host; mount it first");

    /// <summary>VMs of this host that have a disk open on <paramref name="datastore"/>.</summary>
    public IReadOnlyList<string> VmsUsing(string datastore) =>
        _attached.Where(kv => kv.Value.Any(d => d.Datastore == datastore)).Select(kv => kv.Key).ToList();

    /// <summary>How the disks look to QEMU, without opening anything (dry runs, argv display).</summary>
    internal IReadOnlyList<DiskSpec> Describe(string vm, IReadOnlyList<DiskSpec> disks) =>
        disks.Select(d => d.Datastore is null ? d : d with { NbdSocket = NbdSocket, NbdExport = ExportName(vm, d) }).ToList();

    /// <summary>
    /// Opens a VM's datastore disks under this host's lease and exports them. A lease another live host holds
    /// fails at once; one held by a dead host is taken once its heartbeat is stale for hostDeadAfter, waiting
    /// up to <paramref name="leaseWait"/>.
    /// </summary>
    internal async Task<IReadOnlyList<DiskSpec>> AttachAsync(string vm, IReadOnlyList<DiskSpec> disks, TimeSpan leaseWait)
    {
        await DetachAsync(vm);
        var opened = new List<AttachedDisk>();
        try
        {
            foreach (var d in disks.Where(d => d.Datastore is not null))
            {
                var mount = GetDatastore(d.Datastore!);
                VirtualDisk disk;
                try
                {
                    disk = mount.Datastore.OpenDisk(d.DatastoreDisk!, d.ReadOnly ? LeaseMode.SharedRead : LeaseMode.Exclusive, leaseWait);
                }
                catch (VmfsException e)
                {
                    throw new VmkernelException($"disk '{d.Name}' ({d.Datastore}/{d.DatastoreDisk}) cannot be opened: {e.Message}", e);
                }
                var export = ExportName(vm, d);
                var gate = new LeaseGatedDisk($"disk {d.Datastore}/{d.DatastoreDisk} of VM {vm}", disk.Size, d.ReadOnly);
                gate.Activate(disk);
                opened.Add((export, disk, d.Datastore!, gate));
                Nbd.AddExport(export, gate, readOnly: d.ReadOnly, description: $"{d.Datastore}/{d.DatastoreDisk} of VM {vm}");
            }
        }
        catch
        {
            await ReleaseAsync(opened);
            throw;
        }
        if (opened.Count > 0)
        {
            _attached[vm] = opened;
        }
        return Describe(vm, disks);
    }

    /// <summary>
    /// Live migration, target side: exports a VM's datastore disks without taking their leases (the source host
    /// still holds them and its QEMU may still write). Requests are refused until <see cref="TakeOverAsync"/>.
    /// </summary>
    internal async Task<IReadOnlyList<DiskSpec>> AttachIncomingAsync(string vm, IReadOnlyList<DiskSpec> disks)
    {
        await DetachAsync(vm);
        var gates = new List<(string Export, LeaseGatedDisk Gate, DiskSpec Spec)>();
        try
        {
            foreach (var d in disks.Where(d => d.Datastore is not null))
            {
                var info = GetDatastore(d.Datastore!).Datastore.List().FirstOrDefault(i => i.Name == d.DatastoreDisk)
                    ?? throw new VmkernelException($"disk '{d.Name}': {d.Datastore}/{d.DatastoreDisk} does not exist on this host's view of the datastore");
                var export = ExportName(vm, d);
                var gate = new LeaseGatedDisk($"disk {d.Datastore}/{d.DatastoreDisk} of VM {vm}", info.SizeBytes, d.ReadOnly);
                Nbd.AddExport(export, gate, readOnly: d.ReadOnly, description: $"{d.Datastore}/{d.DatastoreDisk} of VM {vm} (incoming, no lease yet)");
                gates.Add((export, gate, d));
            }
        }
        catch
        {
            foreach (var (export, _, _) in gates)
            {
                await Nbd.RemoveExportAsync(export);
            }
            throw;
        }
        _incoming[vm] = gates;
        return Describe(vm, disks);
    }

    /// <summary>
    /// Live migration, target side, once the state arrived: takes every disk's lease as soon as the source released
    /// it (waiting up to <paramref name="leaseWait"/>, reading it every <paramref name="poll"/>; a failure releases
    /// what was taken and leaves the exports refusing) and only then lets requests through.
    /// </summary>
    internal Task TakeOverAsync(string vm, TimeSpan leaseWait, TimeSpan? poll = null)
    {
        if (!_incoming.TryGetValue(vm, out var gates))
        {
            throw new VmkernelException($"VM '{vm}' has no incoming disks on this host to take over");
        }
        var opened = new List<AttachedDisk>();
        try
        {
            foreach (var (export, gate, d) in gates)
            {
                try
                {
                    var disk = GetDatastore(d.Datastore!).Datastore.OpenDisk(d.DatastoreDisk!, d.ReadOnly ? LeaseMode.SharedRead : LeaseMode.Exclusive, leaseWait, poll);
                    opened.Add((export, disk, d.Datastore!, gate));
                }
                catch (VmfsException e)
                {
                    throw new VmkernelException($"disk '{d.Name}' ({d.Datastore}/{d.DatastoreDisk}): the lease handover failed: {e.Message}", e);
                }
            }
        }
        catch
        {
            foreach (var (_, disk, _, _) in opened)
            {
                disk.Dispose();
            }
            throw;
        }
        // Every lease is ours: open the gates. From here on the disks are released like any attached VM's.
        foreach (var (_, disk, _, gate) in opened)
        {
            gate.Activate(disk);
        }
        _incoming.TryRemove(vm, out _);
        if (opened.Count > 0)
        {
            _attached[vm] = opened;
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Live migration, source side, at completion: revokes every export of the VM (new requests refused, the ones in
    /// progress finished), then releases every lease, then cuts the exports' connections. A lease is released only
    /// after all exports are revoked, so no write of this host's QEMU can land once another host may own a disk.
    /// Returns how long the first two steps took (they are in the guest's downtime).
    /// </summary>
    internal async Task<(TimeSpan Revoke, TimeSpan Release)> HandOverAsync(string vm)
    {
        var clock = Stopwatch.StartNew();
        if (_incoming.TryRemove(vm, out var gates))
        {
            await Task.WhenAll(gates.Select(g => Nbd.RemoveExportAsync(g.Export)));
        }
        if (!_attached.TryRemove(vm, out var opened))
        {
            return (clock.Elapsed, TimeSpan.Zero);
        }
        // Each export refuses requests from now on and the ones in progress have finished: nothing this host's QEMU
        // (or any other client) sends can reach a disk once its lease is free. The connections are cut after the
        // release, outside the guest's pause.
        foreach (var (_, _, _, gate) in opened)
        {
            gate.Revoke();
        }
        var revoke = clock.Elapsed;
        foreach (var (_, disk, _, _) in opened)
        {
            // One Disk Paxos release (read the leader, write it free) per disk; sector I/O, a few ms at most.
            disk.Dispose();
        }
        var release = clock.Elapsed - revoke;
        await Task.WhenAll(opened.Select(o => Nbd.RemoveExportAsync(o.Export)));
        return (revoke, release);
    }

    /// <summary>Stops serving a VM's disks and releases their leases.</summary>
    internal async Task DetachAsync(string vm)
    {
        if (_incoming.TryRemove(vm, out var gates))
        {
            foreach (var (export, _, _) in gates)
            {
                await Nbd.RemoveExportAsync(export);
            }
        }
        if (_attached.TryRemove(vm, out var opened))
        {
            await ReleaseAsync(opened);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Nbd.DisposeAsync();
        foreach (var opened in _attached.Values)
        {
            foreach (var (_, disk, _, _) in opened)
            {
                disk.Dispose();
            }
        }
        _attached.Clear();
        foreach (var mount in _datastores.Values)
        {
            mount.Datastore.Dispose();
        }
        _datastores.Clear();
        File.Delete(NbdSocket);
    }

    /// <summary>Mounts again what was mounted before a restart; a datastore that fails is logged, not fatal.</summary>
    internal void RestoreMounts()
    {
        if (!File.Exists(_mountsFile))
        {
            return;
        }
        var mounts = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(_mountsFile)) ?? [];
        foreach (var (name, path) in mounts)
        {
            try
            {
                Mount(name, path);
            }
            catch (VmkernelException e)
            {
                _logger.LogError("Datastore {Datastore} was mounted before the restart but cannot be now: {Error}", name, e.Message);
            }
        }
    }

    private static string ExportName(string vm, DiskSpec d) => $"{vm}/{d.Name}";

    private async Task ReleaseAsync(List<AttachedDisk> opened)
    {
        foreach (var (export, disk, _, _) in opened)
        {
            // Stop serving before the lease goes: no write may reach the disk once another host can own it.
            await Nbd.RemoveExportAsync(export);
            disk.Dispose();
        }
    }

    private void SaveMounts()
    {
        var tmp = _mountsFile + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(_datastores.Values.ToDictionary(m => m.Name, m => m.DevicePath), MountsJson));
        File.Move(tmp, _mountsFile, overwrite: true);
    }

    /// <summary>
    /// Only root and the QEMU user may connect: QEMU opens its disks before it drops privileges, but it
    /// reconnects (after a VMkernel restart) as the unprivileged user.
    /// </summary>
    private static void RestrictToQemu(string socket, string? qemuUser)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (qemuUser is not null && HostEnvironment.GroupId(qemuUser) is int gid)
        {
            Qemu.ProcessInterop.chown(socket, 0, gid);
            File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        }
    }

    private static bool IsBlank(string devicePath)
    {
        using var f = new FileStream(devicePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new byte[1 << 20];
        var n = f.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        return buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) < 0;
    }
}
