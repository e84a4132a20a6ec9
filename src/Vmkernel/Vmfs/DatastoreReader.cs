using System.Collections.Concurrent;
using System.Numerics;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>Reads the datastore's state for display (info, ls, locks), joined or not; writes nothing.</summary>
internal sealed class DatastoreReader
{
    private readonly MetadataIo _io;
    private readonly string _path;

    // Where each disk's descriptor was the last time the whole table was read: a hint, checked against the one sector
    // it names before it is used (another host may have deleted the disk and reused the slot since).
    private readonly ConcurrentDictionary<string, int> _descriptorHints = new(StringComparer.Ordinal);

    public DatastoreReader(MetadataIo io, string path)
    {
        _io = io;
        _path = path;
    }

    private Superblock Sb => _io.Superblock;

    public FileDescriptor[] ReadDescriptors()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.DescriptorOffset, Sb.MaxFiles);
        var result = new FileDescriptor[Sb.MaxFiles];
        for (var i = 0; i < result.Length; i++)
        {
            try
            {
                result[i] = FileDescriptor.Read(data.AsSpan(i * s, s), Sb.DescriptorSectorOffset(i), i);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
            {
                // Another host may be applying a change to it right now; a second read settles it.
                result[i] = ReadDescriptor(i);
            }

            if (result[i].InUse)
            {
                _descriptorHints[result[i].Name] = i;
            }
        }

        return result;
    }

    /// <summary>
    /// The in-use descriptor named <paramref name="name"/>, or null. One sector read when the table was read before
    /// on this host and the disk is still where it was (opening a migrated-in disk is on the guest's pause); the
    /// whole table otherwise.
    /// </summary>
    public FileDescriptor? FindDescriptor(string name)
    {
        if (_descriptorHints.TryGetValue(name, out var hint))
        {
            var known = ReadDescriptor(hint);
            if (known.InUse && known.Name == name)
            {
                return known;
            }
        }

        return ReadDescriptors().FirstOrDefault(d => d.InUse && d.Name == name);
    }

    public FileDescriptor ReadDescriptor(int index)
    {
        var offset = Sb.DescriptorSectorOffset(index);
        return _io.ReadParsed(offset, sector => FileDescriptor.Read(sector, offset, index));
    }

    public long CountUsedBlocks()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.BitmapOffset, Sb.BitmapSectors);
        long used = 0;
        for (var i = 0; i < Sb.BitmapSectors; i++)
        {
            var offset = Sb.BitmapSectorOffset(i);
            var sector = data.AsSpan(i * s, s);
            if (MetadataSector.Check(sector, MetadataSector.BitmapMagic, offset) is not null)
            {
                sector = _io.ReadParsed(offset, x => { BitmapSector.Verify(x, offset, i); return x; });
            }

            foreach (var b in sector[BitmapSector.BitsStart..])
            {
                used += BitOperations.PopCount(b);
            }
        }

        return used;
    }

    public IReadOnlyList<HostInfo> Hosts()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.HeartbeatOffset, Sb.MaxHosts);
        var now = DateTimeOffset.UtcNow;
        var result = new List<HostInfo>();
        for (var i = 0; i < Sb.MaxHosts; i++)
        {
            try
            {
                var slot = HeartbeatSlot.Read(data.AsSpan(i * s, s), Sb.HeartbeatSlotOffset(i), i);
                if (slot.Generation == 0)
                {
                    continue;
                }

                var last = DateTimeOffset.FromUnixTimeMilliseconds(slot.TimestampUnixMs);
                var age = now - last;
                result.Add(new HostInfo
                {
                    Slot = i,
                    HostName = slot.HostName,
                    Live = slot.Live,
                    Generation = slot.Generation,
                    LastHeartbeat = last,
                    HeartbeatAge = age,
                    PresumedDead = slot.Live && age > TimeSpan.FromMilliseconds(Math.Max(slot.HostDeadAfterMs, (uint)Sb.Timings.HostDeadAfter.TotalMilliseconds)),
                });
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
            {
                result.Add(new HostInfo { Slot = i, HostName = "?", Live = false, Generation = 0, PresumedDead = false, Problem = e.Message });
            }
        }

        return result;
    }

    public IReadOnlyList<LockInfo> Locks()
    {
        var hosts = Hosts().ToDictionary(h => h.Slot);
        var descriptors = ReadDescriptors();
        var result = new List<LockInfo> { DescribeLock(0, "metadata", hosts) };
        foreach (var fd in descriptors.Where(d => d.InUse))
        {
            result.Add(DescribeLock(fd.Index + 1, fd.Name, hosts));
        }

        return result;
    }

    public IReadOnlyList<VirtualDiskInfo> List()
    {
        var descriptors = ReadDescriptors();
        return descriptors.Where(d => d.InUse).Select(d => ToInfo(d, descriptors)).OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
    }

    public VirtualDiskInfo ToInfo(FileDescriptor d, IReadOnlyList<FileDescriptor> all) => new()
    {
        Name = d.Name,
        SizeBytes = d.SizeBytes,
        AllocatedBytes = d.AllocatedBlocks * Sb.BlockSize,
        Thin = d.Thin,
        Base = d.IsClone && d.ParentIndex < all.Count ? all[(int)d.ParentIndex].Name : null,
        ReadOnlyBase = d.ReadOnlyBase,
        Clones = d.ChildCount,
        Created = DateTimeOffset.FromUnixTimeMilliseconds(d.CreatedUnixMs),
    };

    public DatastoreInfo Info(bool journalPending)
    {
        var descriptors = ReadDescriptors().Where(d => d.InUse).ToList();
        var used = CountUsedBlocks();
        return new DatastoreInfo
        {
            Path = _path,
            Uuid = Sb.Uuid,
            Label = Sb.Label,
            Version = (int)Sb.Version,
            DeviceBytes = Sb.DeviceSize,
            BlockSize = Sb.BlockSize,
            SectorSize = Sb.SectorSize,
            CapacityBytes = Sb.DataBlocks * Sb.BlockSize,
            UsedBytes = used * Sb.BlockSize,
            FreeBytes = (Sb.DataBlocks - used) * Sb.BlockSize,
            ProvisionedBytes = descriptors.Sum(d => d.SizeBytes),
            AllowThinOvercommit = Sb.AllowThinOvercommit,
            MaxHosts = Sb.MaxHosts,
            MaxFiles = Sb.MaxFiles,
            Disks = descriptors.Count,
            Timings = Sb.Timings,
            DirectIo = _io.Device.DirectIo,
            JournalPending = journalPending,
            Created = DateTimeOffset.FromUnixTimeMilliseconds(Sb.CreatedUnixMs),
            Hosts = Hosts(),
        };
    }

    private LockInfo DescribeLock(int resource, string name, Dictionary<int, HostInfo> hosts)
    {
        try
        {
            var offset = Sb.LeaderOffset(resource);
            var leader = _io.ReadParsed(offset, s => LeaseLeader.Read(s, offset, resource));
            var s = Sb.SectorSize;
            var data = _io.ReadSectors(Sb.BallotOffset(resource, 0), Sb.MaxHosts);
            var readers = new List<string>();
            for (var i = 0; i < Sb.MaxHosts; i++)
            {
                var b = LeaseBallot.Read(data.AsSpan(i * s, s), Sb.BallotOffset(resource, i), resource, i);
                if (b.SharedHeld && hosts.TryGetValue(i, out var h) && h.Live && h.Generation == b.SharedGeneration)
                {
                    readers.Add(h.HostName);
                }
            }

            var exclusive = leader.Mode == LeaseMode.Exclusive;
            hosts.TryGetValue(leader.OwnerSlot, out var owner);
            return new LockInfo
            {
                Resource = name,
                Mode = exclusive ? LeaseMode.Exclusive : readers.Count > 0 ? LeaseMode.SharedRead : LeaseMode.Free,
                OwnerHost = exclusive ? owner?.HostName ?? $"slot {leader.OwnerSlot}" : null,
                OwnerSlot = exclusive ? leader.OwnerSlot : null,
                OwnerGeneration = exclusive ? leader.OwnerGeneration : 0,
                Version = leader.Version,
                AcquiredAt = exclusive ? DateTimeOffset.FromUnixTimeMilliseconds(leader.AcquiredUnixMs) : null,
                SharedReaders = readers,
                OwnerHeartbeatAge = exclusive ? owner?.HeartbeatAge : null,
                Problem = exclusive && (owner is null || !owner.Live || owner.Generation != leader.OwnerGeneration)
                    ? "owner no longer joined (stale lock; the next host to open it takes it over)"
                    : exclusive && owner!.PresumedDead ? "owner's heartbeat is stale (presumed dead)" : null,
            };
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
        {
            return new LockInfo { Resource = name, Mode = LeaseMode.Free, Version = 0, SharedReaders = [], Problem = e.Message };
        }
    }
}
