using System.Text;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A VMFS datastore joined by this host: a heartbeat slot (host-id lease) renewed in the background, resource
/// leases on the disks it opens, and journaled metadata changes under the datastore-wide metadata lock.
/// Many hosts (processes, machines) join one device at once; the device is all they share.
/// Every operation is safe to call from several threads.
/// </summary>
public sealed class VmfsDatastore : IDisposable, IWriteGate
{
    private const int MetadataResource = 0;
    private readonly Lock _metadataGate = new();
    private readonly Lock _localGate = new();
    private readonly Dictionary<int, LocalHold> _local = [];
    private readonly VmfsDevice _device;
    private readonly MetadataIo _io;
    private readonly HostHeartbeat _host;
    private readonly PaxosLeaseManager _leases;
    private readonly MetadataJournal _journal;
    private readonly DatastoreReader _reader;
    private readonly ILogger? _logger;
    private int _disposed;

    private VmfsDatastore(string path, VmfsDevice device, Superblock sb, string hostName, VmfsTimings timings, ILogger? logger, Action<string>? onFenced, bool killTimer)
    {
        Path = path;
        _device = device;
        _logger = logger;
        Timings = timings;
        _io = new MetadataIo(device, sb, this);
        _host = new HostHeartbeat(_io, hostName, timings, logger, onFenced, killTimer);
        _leases = new PaxosLeaseManager(_io, _host, logger);
        _journal = new MetadataJournal(_io, logger);
        _reader = new DatastoreReader(_io, path);
    }

    public string Path { get; }

    public string HostName => _host.HostName;

    public int HostSlot => _host.Slot;

    public ulong HostGeneration => _host.Generation;

    /// <summary>Leases this host took over from a host whose heartbeat had stopped, since this mount.</summary>
    public long LeaseTakeovers => _leases.Takeovers;

    public VmfsTimings Timings { get; }

    public Guid Uuid => Sb.Uuid;

    public int BlockSize => Sb.BlockSize;

    /// <summary>True once this host has fenced itself (then nothing more is written).</summary>
    public bool IsFenced => _host.IsFenced;

    /// <summary>True while this host may write (joined, not fenced, heartbeat renewed within fenceAfter).</summary>
    public bool CanWrite => Volatile.Read(ref _disposed) == 0 && _host.CanWrite;

    /// <summary>True when the device is written with O_DIRECT.</summary>
    public bool DirectIo => _device.DirectIo;

    internal Superblock Sb => _io.Superblock;

    internal VmfsDevice Device => _device;

    internal MetadataIo Io => _io;

    /// <summary>
    /// Formats <paramref name="path"/> (a block device, or a file created with <see cref="FormatOptions.SizeBytes"/>).
    /// Refuses to overwrite a datastore without <see cref="FormatOptions.Force"/>, and one with live hosts at all.
    /// </summary>
    public static DatastoreInfo Format(string path, FormatOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var existed = File.Exists(path) || Directory.Exists(path);
        if (Directory.Exists(path))
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"'{path}' is a directory; give a block device or a file.");
        }

        if (!existed && options.SizeBytes is null)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"'{path}' does not exist; give a size (--size) to create a datastore file there.");
        }

        if (options.SizeBytes is <= 0)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"size {options.SizeBytes} must be positive.");
        }

        VmfsDevice device;
        try
        {
            device = VmfsDevice.Open(path, writable: true, logger, create: !existed);
        }
        catch when (!existed)
        {
            TryDelete(path);
            throw;
        }

        var keep = false;
        try
        {
            var sectorSize = device.MemoryAlignment == 4096 ? 4096 : 512;
            var deviceSize = options.SizeBytes ?? device.Length;
            // Everything that can refuse does so before the first byte is written.
            var sb = Superblock.Plan(options, deviceSize, sectorSize);
            if (existed)
            {
                RefuseOverwrite(device, options.Force);
            }

            if (options.SizeBytes is { } size && size != device.Length)
            {
                try
                {
                    device.SetLength(size);
                }
                catch (VmfsException e)
                {
                    throw new VmfsException(VmfsErrorCode.InvalidArgument,
                        $"'{path}' cannot be sized to {size} bytes (a block device has a fixed size of {device.Length} bytes: do not give a size for it).", e);
                }
            }

            WriteLayout(device, sb);
            keep = true;
            logger?.LogInformation("Formatted {Path} as VMFS datastore {Uuid} ({Blocks} blocks of {BlockSize} bytes)", path, sb.Uuid, sb.DataBlocks, sb.BlockSize);
        }
        finally
        {
            device.Dispose();
            if (!keep && !existed)
            {
                TryDelete(path);
            }
        }

        return VmfsInspector.GetInfo(path);
    }

    /// <summary>
    /// Joins the datastore as <paramref name="hostName"/>: acquires a heartbeat slot, starts renewing it, and
    /// replays a journal left by a crashed host. <paramref name="onFenced"/> is called once, from a background
    /// thread, if this host ever fails to renew for fenceAfter; from then on it writes nothing.
    /// <paramref name="killTimer"/> arms a <see cref="FenceKillTimer"/>: the kernel kills this whole process if it
    /// has neither renewed nor fenced itself by then (say it was stopped). Daemons that hold leases want it;
    /// it is off for tools and in-process tests, where dying would take more down than the datastore.
    /// </summary>
    public static VmfsDatastore Open(string path, string hostName, VmfsTimings? timings = null, ILogger? logger = null, Action<string>? onFenced = null,
        bool killTimer = false, CancellationToken cancellation = default)
    {
        if (string.IsNullOrWhiteSpace(hostName) || Encoding.UTF8.GetByteCount(hostName) > HeartbeatSlot.MaxNameBytes)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"host name '{hostName}' must be 1 to {HeartbeatSlot.MaxNameBytes} bytes.");
        }

        var device = VmfsDevice.Open(path, writable: true, logger);
        VmfsDatastore? ds = null;
        try
        {
            var sb = SuperblockLoader.Load(device);
            var t = timings ?? sb.Timings;
            t.Validate();
            ds = new VmfsDatastore(path, device, sb, hostName, t, logger, onFenced, killTimer);
            ds._host.Join(cancellation);
            ds._host.Start();
            if (ds._journal.ReadHeader().State == JournalHeader.StateCommitted)
            {
                ds.RunMetadata("replay the journal", _ => 0);
            }

            return ds;
        }
        catch
        {
            if (ds is not null)
            {
                ds.Dispose();
            }
            else
            {
                device.Dispose();
            }

            throw;
        }
    }

    public DatastoreInfo GetInfo()
    {
        EnsureOpen();
        return _reader.Info(_journal.ReadHeader().State == JournalHeader.StateCommitted);
    }

    public IReadOnlyList<VirtualDiskInfo> List()
    {
        EnsureOpen();
        return _reader.List();
    }

    public IReadOnlyList<LockInfo> GetLocks()
    {
        EnsureOpen();
        return _reader.Locks();
    }

    public IReadOnlyList<HostInfo> GetHosts()
    {
        EnsureOpen();
        return _reader.Hosts();
    }

    /// <summary>Creates a virtual disk: thin (blocks allocated on first write) or thick (allocated and zeroed now).</summary>
    public VirtualDiskInfo CreateDisk(string name, long sizeBytes, bool thin = true)
    {
        EnsureOpen();
        ValidateName(name);
        ValidateSize(sizeBytes, $"disk '{name}'");
        return RunMetadata($"create disk '{name}'", txn =>
        {
            var all = ReadDescriptors(txn);
            if (all.Any(d => d.InUse && d.Name == name))
            {
                throw new VmfsException(VmfsErrorCode.AlreadyExists, $"a disk named '{name}' already exists on datastore '{Sb.Label}'; pick another name or delete it first.");
            }

            var index = FreeDescriptor(all, name);
            var blocks = DiskMap.BlocksFor(Sb, sizeBytes);
            var mapBlocks = DiskMap.MapBlocksFor(Sb, sizeBytes);
            var allocator = new BlockAllocator(Sb, txn);
            CheckSpace(allocator, all, name, mapBlocks + (thin ? 0 : blocks), blocks + mapBlocks);
            var allocated = allocator.Allocate(mapBlocks + (int)(thin ? 0 : blocks));
            var uid = NewUid();
            var maps = allocated.Take(mapBlocks).ToArray();
            var data = allocated.Skip(mapBlocks).ToArray();
            if (!thin)
            {
                ZeroBlocks(data);
            }

            WriteNewMapBlocks(uid, maps, 0, data);
            var fd = new FileDescriptor
            {
                Index = index,
                Flags = FileDescriptor.FlagInUse | (thin ? FileDescriptor.FlagThin : 0),
                SizeBytes = sizeBytes,
                AllocatedBlocks = data.Length,
                Uid = uid,
                CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                Name = name,
                MapBlocks = maps,
            };
            PutDescriptor(txn, fd);
            all[index] = fd;
            return _reader.ToInfo(fd, all);
        });
    }

    /// <summary>
    /// Creates a linked clone: a thin child that reads through to <paramref name="baseName"/> and copies on
    /// write. The base becomes read-only while it has clones.
    /// </summary>
    public VirtualDiskInfo CloneDisk(string baseName, string childName)
    {
        EnsureOpen();
        ValidateName(childName);
        var baseFd = Find(baseName);
        using var baseLease = AcquireLocal(baseFd, LeaseMode.SharedRead, TimeSpan.Zero, $"cannot clone disk '{baseName}'");
        return RunMetadata($"clone disk '{baseName}' as '{childName}'", txn =>
        {
            var all = ReadDescriptors(txn);
            var parent = all[baseFd.Index];
            if (!parent.InUse || parent.Uid != baseFd.Uid)
            {
                throw NotFound(baseName);
            }

            if (all.Any(d => d.InUse && d.Name == childName))
            {
                throw new VmfsException(VmfsErrorCode.AlreadyExists, $"a disk named '{childName}' already exists on datastore '{Sb.Label}'; pick another name for the clone.");
            }

            var index = FreeDescriptor(all, childName);
            var blocks = DiskMap.BlocksFor(Sb, parent.SizeBytes);
            var mapBlocks = DiskMap.MapBlocksFor(Sb, parent.SizeBytes);
            var allocator = new BlockAllocator(Sb, txn);
            CheckSpace(allocator, all, childName, mapBlocks, blocks + mapBlocks);
            var maps = allocator.Allocate(mapBlocks);
            var uid = NewUid();
            WriteNewMapBlocks(uid, maps, 0, []);
            var child = new FileDescriptor
            {
                Index = index,
                Flags = FileDescriptor.FlagInUse | FileDescriptor.FlagThin,
                ParentIndex = (uint)parent.Index,
                ParentUid = parent.Uid,
                SizeBytes = parent.SizeBytes,
                Uid = uid,
                CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                Name = childName,
                MapBlocks = maps,
            };
            var updatedParent = parent with { Flags = parent.Flags | FileDescriptor.FlagReadOnlyBase, ChildCount = parent.ChildCount + 1 };
            PutDescriptor(txn, child);
            PutDescriptor(txn, updatedParent);
            all[index] = child;
            all[parent.Index] = updatedParent;
            return _reader.ToInfo(child, all);
        });
    }

    /// <summary>Deletes a disk. Fails, naming the holder, while any host (this one included) has it open.</summary>
    public void DeleteDisk(string name)
    {
        EnsureOpen();
        var fd = Find(name);
        using var lease = AcquireLocal(fd, LeaseMode.Exclusive, TimeSpan.Zero, $"cannot delete disk '{name}'");
        RunMetadata($"delete disk '{name}'", txn =>
        {
            var cur = ReadDescriptor(txn, fd.Index);
            if (!cur.InUse || cur.Uid != fd.Uid)
            {
                throw NotFound(name);
            }

            if (cur.ChildCount > 0)
            {
                var children = ReadDescriptors(txn).Where(d => d.InUse && d.ParentIndex == (uint)cur.Index).Select(d => $"'{d.Name}'");
                throw new VmfsException(VmfsErrorCode.InvalidState,
                    $"cannot delete disk '{name}': it is the read-only base of {cur.ChildCount} linked clone(s) ({string.Join(", ", children)}); delete those first.");
            }

            var entries = DiskMap.LoadEntries(_io, cur);
            var allocator = new BlockAllocator(Sb, txn);
            allocator.Free(entries.Where(e => e != 0).Select(e => e - 1).Concat(cur.MapBlocks), $"disk '{name}'");
            if (cur.IsClone)
            {
                var parent = ReadDescriptor(txn, (int)cur.ParentIndex);
                if (parent.InUse && parent.Uid == cur.ParentUid)
                {
                    var remaining = Math.Max(0, parent.ChildCount - 1);
                    PutDescriptor(txn, parent with
                    {
                        ChildCount = remaining,
                        Flags = remaining == 0 ? parent.Flags & ~FileDescriptor.FlagReadOnlyBase : parent.Flags,
                    });
                }
            }

            PutDescriptor(txn, FileDescriptor.Empty(cur.Index));
            return 0;
        });
        _logger?.LogInformation("Deleted disk {Disk}", name);
    }

    /// <summary>Grows or shrinks a disk that no host has open. Linked clones can only grow; bases with clones cannot change.</summary>
    public VirtualDiskInfo ResizeDisk(string name, long newSizeBytes)
    {
        EnsureOpen();
        ValidateSize(newSizeBytes, $"disk '{name}'");
        var fd = Find(name);
        using var lease = AcquireLocal(fd, LeaseMode.Exclusive, TimeSpan.Zero, $"cannot resize disk '{name}'");
        return RunMetadata($"resize disk '{name}'", txn =>
        {
            var all = ReadDescriptors(txn);
            var cur = all[fd.Index];
            if (!cur.InUse || cur.Uid != fd.Uid)
            {
                throw NotFound(name);
            }

            if (cur.ReadOnlyBase)
            {
                throw new VmfsException(VmfsErrorCode.InvalidState, $"cannot resize disk '{name}': it is the read-only base of {cur.ChildCount} linked clone(s).");
            }

            if (cur.IsClone && newSizeBytes < cur.SizeBytes)
            {
                throw new VmfsException(VmfsErrorCode.InvalidState, $"cannot shrink disk '{name}': it is a linked clone (the freed range would show its base again); clones can only grow.");
            }

            var updated = new BlockMapEditor(this, txn, cur).Resize(newSizeBytes, all);
            PutDescriptor(txn, updated);
            all[cur.Index] = updated;
            return _reader.ToInfo(updated, all);
        });
    }

    /// <summary>
    /// Opens a disk for I/O, holding its lease until the returned disk is disposed. Waits up to
    /// <paramref name="wait"/> for another host's lease to be released or declared dead, reading the lease every
    /// <paramref name="poll"/> meanwhile (default: an eighth of the heartbeat interval; a live migration's handover,
    /// where the release is due within milliseconds, asks for a few ms).
    /// </summary>
    public VirtualDisk OpenDisk(string name, LeaseMode mode = LeaseMode.Exclusive, TimeSpan wait = default, TimeSpan? poll = null)
    {
        EnsureOpen();
        if (mode == LeaseMode.Free)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, "open a disk Exclusive or SharedRead.");
        }

        var fd = Find(name);
        if (fd.ReadOnlyBase && mode == LeaseMode.Exclusive)
        {
            throw ReadOnlyBase(fd);
        }

        var lease = AcquireLocal(fd, mode, wait, $"cannot open disk '{name}'", poll);
        try
        {
            if (_journal.ReadHeader().State == JournalHeader.StateCommitted)
            {
                RunMetadata("replay the journal", _ => 0);
            }

            var cur = _reader.ReadDescriptor(fd.Index);
            if (!cur.InUse || cur.Uid != fd.Uid)
            {
                throw NotFound(name);
            }

            if (cur.ReadOnlyBase && mode == LeaseMode.Exclusive)
            {
                throw ReadOnlyBase(cur);
            }

            var map = DiskMap.Load(_io, cur, _reader.ReadDescriptor);
            return new VirtualDisk(this, map, lease);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>Takes a disk's lease without opening it (e.g. to hand it over during migration).</summary>
    public VmfsLease AcquireLease(string name, LeaseMode mode, TimeSpan wait = default)
    {
        EnsureOpen();
        return AcquireLocal(Find(name), mode, wait, $"cannot lock disk '{name}'");
    }

    /// <summary>Releases every lease and the heartbeat slot. After a fence it only closes the device.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        List<HeldLease> held;
        lock (_localGate)
        {
            held = _local.Values.Select(h => h.Lease).ToList();
            _local.Clear();
        }

        foreach (var lease in held)
        {
            try
            {
                _leases.Release(lease);
            }
            catch (VmfsException e)
            {
                _logger?.LogWarning(e, "Could not release lease {Resource} on leaving", lease.Resource);
            }
        }

        _host.Leave();
        _host.Dispose();
        _device.Dispose();
    }

    /// <summary>Metadata and data writes of this host pass its heartbeat's gate (counted while in flight).</summary>
    bool IWriteGate.TryEnterWrite() => _host.TryEnterWrite();

    void IWriteGate.ExitWrite() => _host.ExitWrite();

    /// <summary>The data path's gate: this host's heartbeat itself.</summary>
    internal IWriteGate WriteGate => _host;

    internal void EnsureCanWrite()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new VmfsException(VmfsErrorCode.Closed, $"datastore '{Path}' has been closed on this host.");
        }

        _host.EnsureCanWrite();
    }

    /// <summary>Runs one metadata change: metadata lock, journal replay, build, commit, unlock.</summary>
    internal T RunMetadata<T>(string what, Func<MetadataTransaction, T> build)
    {
        lock (_metadataGate)
        {
            EnsureCanWrite();
            var wait = (2 * Timings.HostDeadAfter) + TimeSpan.FromSeconds(5);
            var held = _leases.Acquire(MetadataResource, LeaseMode.Exclusive, wait, "the datastore metadata lock");
            try
            {
                _journal.Replay();
                var txn = new MetadataTransaction(_io);
                var result = build(txn);
                EnsureCanWrite();
                _journal.Commit(txn, _host.Slot, _host.Generation);
                _logger?.LogDebug("Committed metadata change: {What} ({Sectors} sectors)", what, txn.Count);
                return result;
            }
            finally
            {
                try
                {
                    _leases.Release(held);
                }
                catch (VmfsException e)
                {
                    _logger?.LogWarning(e, "Could not release the metadata lock");
                }
            }
        }
    }

    internal FileDescriptor ReadDescriptor(MetadataTransaction txn, int index)
    {
        var offset = Sb.DescriptorSectorOffset(index);
        return FileDescriptor.Read(txn.Get(offset), offset, index);
    }

    internal FileDescriptor ReadDescriptorNow(int index) => _reader.ReadDescriptor(index);

    internal void PutDescriptor(MetadataTransaction txn, FileDescriptor fd)
    {
        var offset = Sb.DescriptorSectorOffset(fd.Index);
        var sector = new byte[Sb.SectorSize];
        fd.Write(sector, offset);
        txn.Put(offset, sector);
    }

    /// <summary>Writes freshly allocated map blocks (not yet referenced, so no journal needed) with optional entries.</summary>
    internal void WriteNewMapBlocks(ulong uid, IReadOnlyList<uint> mapBlocks, int firstMapBlockIndex, IReadOnlyList<uint> dataBlocks)
    {
        var perBlock = DiskMap.SectorsPerMapBlock(Sb);
        var perSector = DiskMap.EntriesPerSector(Sb);
        using var buffer = new AlignedBuffer(Sb.BlockSize);
        for (var m = 0; m < mapBlocks.Count; m++)
        {
            var blockOffset = Sb.DataBlockOffset(mapBlocks[m]);
            for (var k = 0; k < perBlock; k++)
            {
                var mapSector = ((firstMapBlockIndex + m) * perBlock) + k;
                var sector = buffer.Span.Slice(k * Sb.SectorSize, Sb.SectorSize);
                BlockMapSector.Init(sector, blockOffset + ((long)k * Sb.SectorSize), uid, mapSector);
                var first = (long)mapSector * perSector;
                if (first < dataBlocks.Count)
                {
                    for (var e = 0; e < perSector && first + e < dataBlocks.Count; e++)
                    {
                        BlockMapSector.SetEntry(sector, e, dataBlocks[(int)(first + e)] + 1, blockOffset + ((long)k * Sb.SectorSize));
                    }
                }
            }

            _io.WriteSectors(blockOffset, buffer.Span);
        }
    }

    internal void ZeroBlocks(IReadOnlyList<uint> blocks)
    {
        foreach (var b in blocks)
        {
            EnsureCanWrite();
            _device.Zero(Sb.DataBlockOffset(b), Sb.BlockSize);
        }
    }

    internal void CheckSpace(BlockAllocator allocator, IReadOnlyList<FileDescriptor> all, string name, long neededNow, long promisedMore)
    {
        var free = allocator.FreeBlocks;
        if (neededNow > free)
        {
            throw new VmfsException(VmfsErrorCode.NoSpace,
                $"not enough free space for disk '{name}': it needs {neededNow} blocks ({Bytes(neededNow)}) now and the datastore has {free} ({Bytes(free)}) free. Nothing was changed.");
        }

        if (!Sb.AllowThinOvercommit)
        {
            var promised = all.Where(d => d.InUse).Sum(d => DiskMap.BlocksFor(Sb, d.SizeBytes) + d.MapBlocks.Length);
            if (promised + promisedMore > Sb.DataBlocks)
            {
                throw new VmfsException(VmfsErrorCode.NoSpace,
                    $"disk '{name}' does not fit: the disks on datastore '{Sb.Label}' would be promised {Bytes(promised + promisedMore)} of its {Bytes(Sb.DataBlocks)} " +
                    $"({Bytes(free)} actually free). This datastore does not allow thin over-commit; make the disk smaller, free space, or format with --allow-overcommit. Nothing was changed.");
            }
        }
    }

    internal string Bytes(long blocks)
    {
        var bytes = blocks * Sb.BlockSize;
        return bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F1} GiB" : $"{bytes / (double)(1 << 20):F0} MiB";
    }

    internal void ReleaseLocal(HeldLease held)
    {
        lock (_localGate)
        {
            if (!_local.TryGetValue(held.Resource, out var hold))
            {
                return;
            }

            if (--hold.Count > 0)
            {
                return;
            }

            _local.Remove(held.Resource);
        }

        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            _leases.Release(held);
        }
        catch (VmfsException e)
        {
            _logger?.LogWarning(e, "Could not release lease {Resource}", held.Resource);
        }
    }

    private static void RefuseOverwrite(VmfsDevice device, bool force)
    {
        if (device.Length < 8192)
        {
            return;
        }

        var head = new byte[8192];
        device.Read(0, head);
        if (!head.AsSpan(16, 8).SequenceEqual(Superblock.Signature))
        {
            return;
        }

        Superblock? old = null;
        try
        {
            old = Superblock.Read(head, 0, device.Path);
        }
        catch (VmfsException)
        {
            old = SuperblockLoader.TryReadBackup(head, device.Path);
        }

        if (!force)
        {
            throw new VmfsException(VmfsErrorCode.AlreadyExists,
                $"'{device.Path}' already holds a VMFS datastore{(old is null ? "" : $" ('{old.Label}', {old.Uuid})")}; formatting destroys every disk on it. Pass --force to do it anyway.");
        }

        if (old is null || old.State != Superblock.StateReady)
        {
            return;
        }

        var io = new MetadataIo(device, old, null);
        var live = new DatastoreReader(io, device.Path).Hosts().Where(h => h.Live && !h.PresumedDead).ToList();
        if (live.Count > 0)
        {
            throw new VmfsException(VmfsErrorCode.Locked,
                $"'{device.Path}' is in use by host(s) {string.Join(", ", live.Select(h => $"'{h.HostName}' (slot {h.Slot}, heartbeat {h.HeartbeatAge?.TotalSeconds:F1} s ago)"))}; " +
                "unmount it there first. Formatting a datastore in use is never allowed.");
        }
    }

    private static void WriteLayout(VmfsDevice device, Superblock sb)
    {
        var s = sb.SectorSize;
        var head = new byte[Math.Max(s, Superblock.RecordSize)];
        sb.Write(head, Superblock.PrimaryOffset);
        device.Write(Superblock.PrimaryOffset, head.AsSpan(0, Math.Max(s, Superblock.RecordSize)));
        device.Flush();

        WriteRegion(device, sb.HeartbeatOffset, sb.MaxHosts, s, (sector, i, offset) =>
            new HeartbeatSlot { Slot = i }.Write(sector, offset));
        var perArea = 1 + sb.MaxHosts;
        WriteRegion(device, sb.LeaseOffset, (sb.MaxFiles + 1) * perArea, s, (sector, i, offset) =>
        {
            var resource = i / perArea;
            var k = i % perArea;
            if (k == 0)
            {
                new LeaseLeader { Resource = resource }.Write(sector, offset);
            }
            else
            {
                new LeaseBallot { Resource = resource, HostSlot = k - 1 }.Write(sector, offset);
            }
        });
        WriteRegion(device, sb.JournalOffset, 1, s, (sector, _, offset) => new JournalHeader().Write(sector, offset));
        WriteRegion(device, sb.BitmapOffset, sb.BitmapSectors, s, (sector, i, offset) => BitmapSector.Init(sector, offset, i));
        WriteRegion(device, sb.DescriptorOffset, sb.MaxFiles, s, (sector, i, offset) => FileDescriptor.Empty(i).Write(sector, offset));
        device.Flush();

        var ready = sb with { State = Superblock.StateReady };
        ready.Write(head, Superblock.BackupOffset);
        device.Write(Superblock.BackupOffset, head.AsSpan(0, Math.Max(s, Superblock.RecordSize)));
        device.Flush();
        ready.Write(head, Superblock.PrimaryOffset);
        device.Write(Superblock.PrimaryOffset, head.AsSpan(0, Math.Max(s, Superblock.RecordSize)));
        device.Flush();
    }

    private delegate void SectorInit(Span<byte> sector, int index, long offset);

    private static void WriteRegion(VmfsDevice device, long offset, int count, int sectorSize, SectorInit init)
    {
        const int chunk = 2048;
        using var buffer = new AlignedBuffer(Math.Min(count, chunk) * sectorSize);
        for (var first = 0; first < count; first += chunk)
        {
            var n = Math.Min(chunk, count - first);
            for (var k = 0; k < n; k++)
            {
                var at = offset + ((long)(first + k) * sectorSize);
                init(buffer.Span.Slice(k * sectorSize, sectorSize), first + k, at);
            }

            device.Write(offset + ((long)first * sectorSize), buffer.Span[..(n * sectorSize)]);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static ulong NewUid() => (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    private static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name != name.Trim() || name.Contains('/') || name.Any(char.IsControl))
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument,
                $"disk name '{name}' is not valid: use printable characters without '/' and without leading or trailing spaces.");
        }

        var bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes > FileDescriptor.MaxNameBytes)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument,
                $"disk name '{name[..Math.Min(name.Length, 40)]}...' is {bytes} bytes long; names are at most {FileDescriptor.MaxNameBytes} bytes (UTF-8).");
        }
    }

    private void ValidateSize(long sizeBytes, string what)
    {
        if (sizeBytes <= 0 || sizeBytes % 512 != 0)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"size {sizeBytes} of {what} must be a positive multiple of 512 bytes.");
        }

        if (sizeBytes > DiskMap.MaxDiskBytes(Sb))
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument,
                $"size {sizeBytes} of {what} exceeds the largest disk this datastore's block size allows ({DiskMap.MaxDiskBytes(Sb)} bytes).");
        }
    }

    private static VmfsException NotFound(string name) =>
        new(VmfsErrorCode.NotFound, $"no disk named '{name}' on this datastore; `vmctl ds ls` lists the disks.");

    private static VmfsException ReadOnlyBase(FileDescriptor fd) =>
        new(VmfsErrorCode.InvalidState,
            $"disk '{fd.Name}' is the read-only base of {fd.ChildCount} linked clone(s); open it SharedRead, or delete its clones to make it writable again.");

    private FileDescriptor Find(string name) => _reader.FindDescriptor(name) ?? throw NotFound(name);

    private FileDescriptor[] ReadDescriptors(MetadataTransaction txn)
    {
        var data = txn.GetRange(Sb.DescriptorOffset, Sb.MaxFiles);
        var s = Sb.SectorSize;
        var result = new FileDescriptor[Sb.MaxFiles];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = FileDescriptor.Read(data.AsSpan(i * s, s), Sb.DescriptorSectorOffset(i), i);
        }

        return result;
    }

    private int FreeDescriptor(FileDescriptor[] all, string name)
    {
        var free = Array.FindIndex(all, d => !d.InUse);
        return free >= 0
            ? free
            : throw new VmfsException(VmfsErrorCode.NoSpace,
                $"cannot create disk '{name}': all {Sb.MaxFiles} file descriptors of the datastore are in use; delete disks or reformat with more files (--max-files).");
    }

    private VmfsLease AcquireLocal(FileDescriptor fd, LeaseMode mode, TimeSpan wait, string action, TimeSpan? poll = null)
    {
        var resource = fd.Index + 1;
        lock (_localGate)
        {
            if (_local.TryGetValue(resource, out var hold))
            {
                if (hold.Lease.Mode == LeaseMode.SharedRead && mode == LeaseMode.SharedRead)
                {
                    hold.Count++;
                    return new VmfsLease(this, hold.Lease, fd.Name);
                }

                throw new VmfsException(VmfsErrorCode.Locked,
                    $"{action}: it is open {(hold.Lease.Mode == LeaseMode.Exclusive ? "exclusive" : "shared-read")} on this host ('{HostName}', slot {HostSlot}, lease version {hold.Lease.Version}); close it here first.");
            }
        }

        HeldLease held;
        try
        {
            held = _leases.Acquire(resource, mode, wait, $"disk '{fd.Name}'", poll);
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Locked)
        {
            throw new VmfsException(VmfsErrorCode.Locked, $"{action}: {e.Message}", e);
        }

        lock (_localGate)
        {
            if (_local.TryGetValue(resource, out var raced))
            {
                // Another thread of this host got it first (shared); keep one on-disk hold.
                if (raced.Lease.Mode == LeaseMode.SharedRead && held.Mode == LeaseMode.SharedRead)
                {
                    raced.Count++;
                    return new VmfsLease(this, raced.Lease, fd.Name);
                }
            }

            _local[resource] = new LocalHold(held);
        }

        return new VmfsLease(this, held, fd.Name);
    }

    private void EnsureOpen()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new VmfsException(VmfsErrorCode.Closed, $"datastore '{Path}' has been closed on this host.");
        }
    }

    private sealed class LocalHold(HeldLease lease)
    {
        public HeldLease Lease { get; } = lease;

        public int Count { get; set; } = 1;
    }
}
