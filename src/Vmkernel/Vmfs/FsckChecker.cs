namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Checks every metadata structure: checksums and self offsets of all sectors, then the cross-references
/// (names unique, clone parents present and read-only, child counts, each block owned at most once, bitmap
/// equal to the set of owned blocks, allocated counts). Remembers what a repair needs.
/// </summary>
internal sealed class FsckChecker
{
    private readonly MetadataIo _io;

    public FsckChecker(MetadataIo io) => _io = io;

    public List<FsckFinding> Findings { get; } = [];

    /// <summary>Every block some disk owns (data or map), once the descriptors and maps are intact.</summary>
    public HashSet<uint> Owned { get; } = [];

    /// <summary>False when an unrepairable problem makes the owned-block set unreliable (then the bitmap is not rebuilt).</summary>
    public bool ReferencesComplete { get; private set; } = true;

    public Dictionary<int, FileDescriptor> DescriptorFixes { get; } = [];

    public List<int> CorruptSlots { get; } = [];

    public List<long> CorruptLeaseSectors { get; } = [];

    private Superblock Sb => _io.Superblock;

    public void Run()
    {
        CheckHeartbeats();
        CheckLeases();
        CheckJournal();
        var bitmap = CheckBitmap();
        var descriptors = CheckDescriptors();
        if (descriptors is not null)
        {
            CheckFiles(descriptors);
        }

        if (bitmap is not null && ReferencesComplete)
        {
            CompareBitmap(bitmap);
        }
    }

    private void CheckHeartbeats()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.HeartbeatOffset, Sb.MaxHosts);
        for (var i = 0; i < Sb.MaxHosts; i++)
        {
            var offset = Sb.HeartbeatSlotOffset(i);
            if (MetadataSector.Check(data.AsSpan(i * s, s), MetadataSector.HeartbeatMagic, offset) is { } problem)
            {
                Findings.Add(new FsckFinding($"heartbeat slot {i}", offset, problem, Repairable: true));
                CorruptSlots.Add(i);
            }
        }
    }

    private void CheckLeases()
    {
        var s = Sb.SectorSize;
        var perArea = 1 + Sb.MaxHosts;
        for (var r = 0; r <= Sb.MaxFiles; r++)
        {
            var data = _io.ReadSectors(Sb.LeaderOffset(r), perArea);
            for (var k = 0; k < perArea; k++)
            {
                var offset = Sb.LeaderOffset(r) + ((long)k * s);
                var magic = k == 0 ? MetadataSector.LeaderMagic : MetadataSector.BallotMagic;
                if (MetadataSector.Check(data.AsSpan(k * s, s), magic, offset) is { } problem)
                {
                    var what = k == 0 ? $"lock record {r} (leader)" : $"lock record {r} (ballot of host slot {k - 1})";
                    Findings.Add(new FsckFinding(what, offset, problem, Repairable: true));
                    CorruptLeaseSectors.Add(offset);
                }
            }
        }
    }

    private void CheckJournal()
    {
        var journal = new MetadataJournal(_io, null);
        try
        {
            var header = journal.ReadHeader();
            if (header.State == JournalHeader.StateCommitted)
            {
                var pending = journal.ReadPending();
                Findings.Add(new FsckFinding("journal", Sb.JournalOffset,
                    $"transaction {header.Sequence} ({pending.Count} sectors, host slot {header.WriterSlot}) is committed but not yet applied; the next host to join (or --repair) replays it",
                    Repairable: true, IsError: false));
            }
        }
        catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
        {
            Findings.Add(new FsckFinding(e.Structure ?? "journal", e.Offset, e.Message, Repairable: false));
        }
    }

    private byte[]? CheckBitmap()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.BitmapOffset, Sb.BitmapSectors);
        var ok = true;
        for (var i = 0; i < Sb.BitmapSectors; i++)
        {
            var offset = Sb.BitmapSectorOffset(i);
            if (MetadataSector.Check(data.AsSpan(i * s, s), MetadataSector.BitmapMagic, offset) is { } problem)
            {
                Findings.Add(new FsckFinding($"allocation bitmap sector {i}", offset, problem + "; --repair rebuilds it from the block maps", Repairable: true));
                ok = false;
            }
        }

        return ok ? data : null;
    }

    private FileDescriptor[]? CheckDescriptors()
    {
        var s = Sb.SectorSize;
        var data = _io.ReadSectors(Sb.DescriptorOffset, Sb.MaxFiles);
        var result = new FileDescriptor[Sb.MaxFiles];
        for (var i = 0; i < Sb.MaxFiles; i++)
        {
            try
            {
                result[i] = FileDescriptor.Read(data.AsSpan(i * s, s), Sb.DescriptorSectorOffset(i), i);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
            {
                Findings.Add(new FsckFinding($"file descriptor {i}", e.Offset, e.Message, Repairable: false));
                ReferencesComplete = false;
                result[i] = FileDescriptor.Empty(i);
            }
        }

        return result;
    }

    private void CheckFiles(FileDescriptor[] all)
    {
        var owners = new Dictionary<uint, string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var children = new int[all.Length];
        foreach (var fd in all.Where(d => d.InUse))
        {
            var where = $"file descriptor {fd.Index} ('{fd.Name}')";
            var at = Sb.DescriptorSectorOffset(fd.Index);
            if (!names.Add(fd.Name))
            {
                Findings.Add(new FsckFinding(where, at, $"the name '{fd.Name}' is used twice", Repairable: false));
            }

            if (fd.IsClone)
            {
                if (fd.ParentIndex >= all.Length || !all[fd.ParentIndex].InUse || all[fd.ParentIndex].Uid != fd.ParentUid)
                {
                    Findings.Add(new FsckFinding(where, at, $"its base disk (descriptor {fd.ParentIndex}) does not exist", Repairable: false));
                }
                else
                {
                    children[fd.ParentIndex]++;
                }
            }

            foreach (var m in fd.MapBlocks)
            {
                Claim(owners, m, $"disk '{fd.Name}' (block map)", where, at);
            }

            uint[] entries;
            try
            {
                entries = DiskMap.LoadEntries(_io, fd);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt)
            {
                Findings.Add(new FsckFinding(e.Structure ?? where, e.Offset, e.Message, Repairable: false));
                ReferencesComplete = false;
                continue;
            }

            var count = 0L;
            foreach (var e in entries.Where(e => e != 0))
            {
                Claim(owners, e - 1, $"disk '{fd.Name}'", where, at);
                count++;
            }

            if (count != fd.AllocatedBlocks)
            {
                Findings.Add(new FsckFinding(where, at, $"it records {fd.AllocatedBlocks} allocated blocks but its block map has {count}", Repairable: true));
                Fix(fd.Index, all, d => d with { AllocatedBlocks = count });
            }
        }

        foreach (var fd in all.Where(d => d.InUse))
        {
            var n = children[fd.Index];
            if (n != fd.ChildCount || (n > 0) != fd.ReadOnlyBase)
            {
                Findings.Add(new FsckFinding($"file descriptor {fd.Index} ('{fd.Name}')", Sb.DescriptorSectorOffset(fd.Index),
                    $"it records {fd.ChildCount} linked clones (read-only: {fd.ReadOnlyBase}) but {n} exist", Repairable: true));
                Fix(fd.Index, all, d => d with
                {
                    ChildCount = n,
                    Flags = n > 0 ? d.Flags | FileDescriptor.FlagReadOnlyBase : d.Flags & ~FileDescriptor.FlagReadOnlyBase,
                });
            }
        }
    }

    private void Fix(int index, FileDescriptor[] all, Func<FileDescriptor, FileDescriptor> change)
    {
        var current = DescriptorFixes.TryGetValue(index, out var fixedAlready) ? fixedAlready : all[index];
        DescriptorFixes[index] = change(current);
    }

    private void Claim(Dictionary<uint, string> owners, uint block, string owner, string where, long at)
    {
        if (block >= Sb.DataBlocks)
        {
            Findings.Add(new FsckFinding(where, at, $"{owner} points at block {block}, past the end of the datastore", Repairable: false));
            ReferencesComplete = false;
            return;
        }

        if (!owners.TryAdd(block, owner))
        {
            Findings.Add(new FsckFinding(where, at, $"block {block} is used both by {owners[block]} and by {owner}", Repairable: false));
            ReferencesComplete = false;
        }

        Owned.Add(block);
    }

    private void CompareBitmap(byte[] bitmap)
    {
        var s = Sb.SectorSize;
        var bits = Sb.BitsPerBitmapSector;
        long leaked = 0, missing = 0;
        var firstLeaked = -1L;
        var firstMissing = -1L;
        for (long block = 0; block < Sb.DataBlocks; block++)
        {
            var sector = bitmap.AsSpan((int)(block / bits) * s, s);
            var set = BitmapSector.Get(sector, (int)(block % bits));
            var owned = Owned.Contains((uint)block);
            if (set && !owned)
            {
                leaked++;
                firstLeaked = firstLeaked < 0 ? block : firstLeaked;
            }
            else if (!set && owned)
            {
                missing++;
                firstMissing = firstMissing < 0 ? block : firstMissing;
            }
        }

        if (leaked > 0)
        {
            Findings.Add(new FsckFinding($"allocation bitmap sector {firstLeaked / bits}", Sb.BitmapSectorOffset((int)(firstLeaked / bits)),
                $"{leaked} block(s) are marked allocated but no disk uses them (first: block {firstLeaked}); --repair frees them", Repairable: true));
        }

        if (missing > 0)
        {
            Findings.Add(new FsckFinding($"allocation bitmap sector {firstMissing / bits}", Sb.BitmapSectorOffset((int)(firstMissing / bits)),
                $"{missing} block(s) are used by disks but marked free (first: block {firstMissing}); --repair marks them allocated", Repairable: true));
        }
    }
}
