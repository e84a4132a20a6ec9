using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

/// <summary>A flipped bit in any metadata structure is detected, named with its offset, and never used.</summary>
public class VmfsCorruptionTests
{
    public enum Target
    {
        Superblock,
        HeartbeatSlot,
        LockLeader,
        LockBallot,
        JournalHeader,
        Bitmap,
        Descriptor,
        BlockMap,
    }

    [Theory]
    [InlineData(Target.Superblock, "superblock")]
    [InlineData(Target.HeartbeatSlot, "heartbeat slot 3")]
    [InlineData(Target.LockLeader, "lock record 1 (leader)")]
    [InlineData(Target.LockBallot, "lock record 1 (ballot of host slot 2)")]
    [InlineData(Target.JournalHeader, "journal header")]
    [InlineData(Target.Bitmap, "allocation bitmap sector 0")]
    [InlineData(Target.Descriptor, "file descriptor 0")]
    [InlineData(Target.BlockMap, "block map sector 0 of disk 'base'")]
    public void A_bit_flip_is_detected_and_named_with_its_offset(Target target, string structure)
    {
        using var temp = new TempDatastore(64L << 20);
        using (var ds = temp.Join("esx1"))
        {
            ds.CreateDisk("base", 4 << 20);
            using var disk = ds.OpenDisk("base");
            disk.Write(0, new byte[8192], false);
        }

        var sb = ReadSuperblock(temp.FilePath);
        var descriptor = ReadDescriptor(temp.FilePath, sb, 0);
        var offset = target switch
        {
            Target.Superblock => 0,
            Target.HeartbeatSlot => sb.HeartbeatSlotOffset(3),
            Target.LockLeader => sb.LeaderOffset(1),
            Target.LockBallot => sb.BallotOffset(1, 2),
            Target.JournalHeader => sb.JournalOffset,
            Target.Bitmap => sb.BitmapSectorOffset(0),
            Target.Descriptor => sb.DescriptorSectorOffset(0),
            Target.BlockMap => DiskMap.MapSectorOffset(sb, descriptor, 0),
            _ => throw new ArgumentOutOfRangeException(nameof(target)),
        };
        FlipBit(temp.FilePath, offset + 37, 5);

        var report = VmfsFsck.Check(temp.FilePath);
        Assert.False(report.Clean);
        var finding = Assert.Single(report.Findings, f => f.IsError);
        Assert.StartsWith(structure, finding.Structure);
        Assert.Equal(offset, finding.Offset);
        Assert.Contains("checksum mismatch", finding.Problem);

        // The structure is also refused where it is used.
        Action use = target switch
        {
            Target.Superblock => () => VmfsDatastore.Open(temp.FilePath, "esx2").Dispose(),
            Target.JournalHeader => () => VmfsDatastore.Open(temp.FilePath, "esx2").Dispose(),
            Target.HeartbeatSlot => () => VmfsInspector.GetHosts(temp.FilePath).Single(h => h.Problem is not null).Problem!.ThrowAsCorrupt(),
            Target.LockLeader or Target.LockBallot or Target.BlockMap => () => OpenBase(temp),
            Target.Bitmap => () => CreateDisk(temp),
            Target.Descriptor => () => VmfsInspector.List(temp.FilePath),
            _ => throw new ArgumentOutOfRangeException(nameof(target)),
        };
        var e = Assert.Throws<VmfsException>(use);
        Assert.Equal(VmfsErrorCode.Corrupt, e.Code);
        Assert.Contains(structure, e.Message);
        Assert.Contains($"offset {offset}", e.Message);
    }

    [Fact]
    public void Repair_restores_the_superblock_from_its_backup_and_rebuilds_a_damaged_bitmap()
    {
        using var temp = new TempDatastore(64L << 20);
        using (var ds = temp.Join("esx1"))
        {
            ds.CreateDisk("a", 4 << 20, thin: false);
        }

        var sb = ReadSuperblock(temp.FilePath);
        FlipBit(temp.FilePath, 40, 1);
        FlipBit(temp.FilePath, sb.BitmapSectorOffset(0) + 40, 0);
        Assert.Equal(2, VmfsFsck.Check(temp.FilePath).Findings.Count(f => f.IsError && f.Repairable));

        var repaired = VmfsFsck.Repair(temp.FilePath, timings: TempDatastore.FastTimings);
        Assert.True(repaired.Clean, string.Join("; ", repaired.Findings.Select(f => f.Problem)));
        Assert.Contains(repaired.Repairs, r => r.Contains("superblock restored"));
        Assert.Contains(repaired.Repairs, r => r.Contains("bitmap sector 0 rebuilt"));
        Assert.Equal(5L << 20, VmfsInspector.GetInfo(temp.FilePath).UsedBytes); // 4 data blocks + 1 map block
    }

    private static void OpenBase(TempDatastore temp)
    {
        using var ds = temp.Join("esx2");
        ds.OpenDisk("base").Dispose();
    }

    private static void CreateDisk(TempDatastore temp)
    {
        using var ds = temp.Join("esx2");
        ds.CreateDisk("more", 1 << 20);
    }

    internal static Superblock ReadSuperblock(string path)
    {
        using var device = VmfsDevice.Open(path, writable: false);
        return SuperblockLoader.Load(device);
    }

    private static FileDescriptor ReadDescriptor(string path, Superblock sb, int index)
    {
        using var device = VmfsDevice.Open(path, writable: false);
        var sector = new byte[sb.SectorSize];
        device.Read(sb.DescriptorSectorOffset(index), sector);
        return FileDescriptor.Read(sector, sb.DescriptorSectorOffset(index), index);
    }

    internal static void FlipBit(string path, long offset, int bit)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ (1 << bit)));
    }
}

internal static class CorruptionTestExtensions
{
    /// <summary>Inspection lists a corrupt heartbeat slot with its error instead of failing; surface it as the exception.</summary>
    public static void ThrowAsCorrupt(this string problem) => throw new VmfsException(VmfsErrorCode.Corrupt, problem);
}
