using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// `vmctl ds fsck`. <see cref="Check"/> only reads (a pending journal is overlaid, as replay would apply it).
/// <see cref="Repair"/> restores a damaged primary superblock from its backup, joins the datastore (which
/// replays the journal), then, under the metadata lock and through the journal, rebuilds the bitmap from the
/// block maps and fixes allocated and clone counts. Lock records and heartbeat slots are rewritten only when
/// no other host is joined, since a live host may own them. Damaged descriptors and block maps are reported,
/// never guessed at.
/// </summary>
public static class VmfsFsck
{
    public static FsckReport Check(string path)
    {
        using var device = VmfsDevice.Open(path, writable: false);
        var findings = new List<FsckFinding>();
        Superblock sb;
        try
        {
            sb = SuperblockLoader.Load(device);
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
        {
            var head = new byte[8192];
            device.Read(0, head);
            var backup = SuperblockLoader.TryReadBackup(head, path);
            findings.Add(new FsckFinding(e.Structure ?? "superblock", e.Offset, e.Message, Repairable: backup is not null));
            if (backup is null)
            {
                return new FsckReport(path, findings, []);
            }

            sb = backup;
        }

        CheckBackup(device, sb, findings);
        var io = new MetadataIo(device, sb, ClosedWriteGate.Instance);
        try
        {
            var pending = new MetadataJournal(io, null).ReadPending();
            if (pending.Count > 0)
            {
                io.Overlay = pending.ToDictionary(p => p.Offset, p => p.Image);
            }
        }
        catch (VmfsException)
        {
            // Reported by the checker below.
        }

        var checker = new FsckChecker(io);
        checker.Run();
        findings.AddRange(checker.Findings);
        return new FsckReport(path, findings, []);
    }

    public static FsckReport Repair(string path, string hostName = "fsck", VmfsTimings? timings = null, ILogger? logger = null)
    {
        var repairs = new List<string>();
        RestoreSuperblock(path, repairs);
        using (var ds = VmfsDatastore.Open(path, hostName, timings, logger))
        {
            repairs.Add("joined the datastore (any committed journal transaction was replayed)");
            var sb = ds.Sb;
            ds.RunMetadata("fsck repair", txn =>
            {
                var checker = new FsckChecker(ds.Io);
                checker.Run();
                foreach (var (_, fd) in checker.DescriptorFixes)
                {
                    ds.PutDescriptor(txn, fd);
                    repairs.Add($"file descriptor {fd.Index} ('{fd.Name}'): allocated/clone counts corrected");
                }

                if (checker.ReferencesComplete)
                {
                    var bits = sb.BitsPerBitmapSector;
                    for (var i = 0; i < sb.BitmapSectors; i++)
                    {
                        var offset = sb.BitmapSectorOffset(i);
                        var current = ds.Io.ReadSector(offset);
                        var wanted = new byte[sb.SectorSize];
                        BitmapSector.Init(wanted, offset, i);
                        for (var bit = 0; bit < bits; bit++)
                        {
                            var block = ((long)i * bits) + bit;
                            if (block < sb.DataBlocks && checker.Owned.Contains((uint)block))
                            {
                                BitmapSector.Set(wanted, bit, true);
                            }
                        }

                        BitmapSector.Reseal(wanted, offset);
                        if (!wanted.AsSpan().SequenceEqual(current))
                        {
                            txn.Put(offset, wanted);
                            repairs.Add($"allocation bitmap sector {i} rebuilt from the block maps");
                        }
                    }
                }

                var others = ds.GetHosts().Where(h => h.Live && h.Slot != ds.HostSlot && !h.PresumedDead).ToList();
                if (checker.CorruptLeaseSectors.Count + checker.CorruptSlots.Count > 0)
                {
                    if (others.Count > 0)
                    {
                        repairs.Add($"lock records and heartbeat slots not repaired: host(s) {string.Join(", ", others.Select(h => h.HostName))} are joined and may own them; repair again when they have left");
                    }
                    else
                    {
                        RepairLeaseSectors(ds, checker, repairs);
                    }
                }

                return 0;
            });
        }

        var after = Check(path);
        return after with { Repairs = repairs };
    }

    private static void RepairLeaseSectors(VmfsDatastore ds, FsckChecker checker, List<string> repairs)
    {
        var sb = ds.Sb;
        var perArea = sb.LeaseAreaBytes;
        foreach (var offset in checker.CorruptLeaseSectors)
        {
            var resource = (int)((offset - sb.LeaseOffset) / perArea);
            var k = (int)((offset - sb.LeaderOffset(resource)) / sb.SectorSize);
            // A fresh round must be higher than anything a ballot may have seen: take the highest version in the area.
            var highest = 0UL;
            for (var j = 0; j <= sb.MaxHosts; j++)
            {
                var o = sb.LeaderOffset(resource) + ((long)j * sb.SectorSize);
                var sector = ds.Io.ReadSector(o);
                if (MetadataSector.Check(sector, j == 0 ? MetadataSector.LeaderMagic : MetadataSector.BallotMagic, o) is null)
                {
                    highest = Math.Max(highest, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(sector.AsSpan(j == 0 ? 40 : 24)));
                }
            }

            var fresh = new byte[sb.SectorSize];
            if (k == 0)
            {
                new LeaseLeader { Resource = resource, Version = highest }.Write(fresh, offset);
            }
            else
            {
                new LeaseBallot { Resource = resource, HostSlot = k - 1, Version = highest }.Write(fresh, offset);
            }

            ds.Io.WriteSectors(offset, fresh);
            repairs.Add($"lock record {resource} sector {k} at offset {offset} reset (free, version {highest})");
        }

        // A corrupt slot may still belong to a live host (its next renewal rewrites it): reset only slots whose
        // bytes stay unchanged for hostDeadAfter.
        var before = checker.CorruptSlots.Where(slot => slot != ds.HostSlot)
            .ToDictionary(slot => slot, slot => ds.Io.ReadSector(sb.HeartbeatSlotOffset(slot)));
        if (before.Count > 0)
        {
            Thread.Sleep(ds.Timings.HostDeadAfter);
        }

        foreach (var (slot, bytes) in before)
        {
            var offset = sb.HeartbeatSlotOffset(slot);
            if (!ds.Io.ReadSector(offset).AsSpan().SequenceEqual(bytes))
            {
                repairs.Add($"heartbeat slot {slot} changed while watched (a live host owns it); left alone");
                continue;
            }

            var fresh = new byte[sb.SectorSize];
            new HeartbeatSlot { Slot = slot, Generation = 1 }.Write(fresh, offset);
            ds.Io.WriteSectors(offset, fresh);
            repairs.Add($"heartbeat slot {slot} at offset {offset} reset to free");
        }
    }

    private static void RestoreSuperblock(string path, List<string> repairs)
    {
        using var device = VmfsDevice.Open(path, writable: true);
        var head = new byte[8192];
        device.Read(0, head);
        try
        {
            SuperblockLoader.Load(device);
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt && SuperblockLoader.TryReadBackup(head, path) is { } backup)
        {
            var record = new byte[Math.Max(backup.SectorSize, Superblock.RecordSize)];
            backup.Write(record, Superblock.PrimaryOffset);
            device.Write(Superblock.PrimaryOffset, record);
            device.Flush();
            repairs.Add("primary superblock restored from the backup at byte 4096");
        }
    }

    private static void CheckBackup(VmfsDevice device, Superblock primary, List<FsckFinding> findings)
    {
        var head = new byte[8192];
        device.Read(0, head);
        var backup = SuperblockLoader.TryReadBackup(head, device.Path);
        if (backup is null)
        {
            findings.Add(new FsckFinding("backup superblock", Superblock.BackupOffset, "unreadable or corrupt", Repairable: false));
        }
        else if (backup with { } != primary with { })
        {
            if (backup.Uuid != primary.Uuid || backup.DataOffset != primary.DataOffset)
            {
                findings.Add(new FsckFinding("backup superblock", Superblock.BackupOffset, "it differs from the primary superblock", Repairable: false));
            }
        }
    }
}
