using System.Buffers.Binary;
using System.Text;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The superblock and the datastore layout it describes. One record of 512 bytes, written at byte 0 (primary)
/// and byte 4096 (backup, used by fsck --repair when the primary is damaged). Little-endian:
/// <code>
///   0  header (magic "VSBK", crc32c, selfOffset)     see MetadataSector
///  16  u8[8] signature "VMKVMFS\0"
///  24  u32  version (1)
///  28  u32  state (1 = formatting, 2 = ready)       a crash during format leaves 1: "half-formatted"
///  32  u8[16] datastore UUID
///  48  u32  sectorSize S (512, or 4096 on 4Kn devices): unit of every metadata structure below
///  52  u32  blockSize B (data allocation unit, default 1 MiB)
///  56  u64  deviceSize at format time
///  64  u32  maxHosts H      68 u32 maxFiles F
///  72  u64  heartbeatOffset   H sectors, one slot per host
///  80  u64  leaseOffset       (F+1) lease areas of (1+H) sectors: leader, then one ballot sector per host;
///                             area 0 is the datastore-wide metadata lock, area i+1 belongs to descriptor i
///  88  u64  journalOffset    96 u32 journalSectors (header sector + images)
/// 100  u32  bitmapSectors   104 u64 bitmapOffset    (S-32)*8 blocks per sector
/// 112  u64  descriptorOffset  F sectors, one file descriptor each (the flat directory)
/// 120  u64  dataOffset (B-aligned)   128 u64 dataBlocks
/// 136  u32  heartbeatIntervalMs  140 u32 fenceAfterMs  144 u32 hostDeadAfterMs  148 u32 maxIoLatencyMs
/// 152  u32  flags (1 = thin over-commit allowed)
/// 156  i64  created (unix ms)
/// 164  u16  label length, 166 u8[64] label (UTF-8)
/// </code>
/// Region starts are 4096-aligned, so every region is aligned for O_DIRECT whatever S is.
/// </summary>
internal sealed record Superblock
{
    public const int RecordSize = 512;
    public const long PrimaryOffset = 0;
    public const long BackupOffset = 4096;
    public const uint CurrentVersion = 1;
    public const uint StateFormatting = 1;
    public const uint StateReady = 2;
    public const int MinDataBlocks = 8;
    public const int MaxLabelBytes = 64;
    public static ReadOnlySpan<byte> Signature => "VMKVMFS\0"u8;

    public uint Version { get; init; } = CurrentVersion;
    public uint State { get; init; }
    public Guid Uuid { get; init; }
    public int SectorSize { get; init; }
    public int BlockSize { get; init; }
    public long DeviceSize { get; init; }
    public int MaxHosts { get; init; }
    public int MaxFiles { get; init; }
    public long HeartbeatOffset { get; init; }
    public long LeaseOffset { get; init; }
    public long JournalOffset { get; init; }
    public int JournalSectors { get; init; }
    public int BitmapSectors { get; init; }
    public long BitmapOffset { get; init; }
    public long DescriptorOffset { get; init; }
    public long DataOffset { get; init; }
    public long DataBlocks { get; init; }
    public VmfsTimings Timings { get; init; } = VmfsTimings.Default;
    public bool AllowThinOvercommit { get; init; }
    public long CreatedUnixMs { get; init; }
    public string Label { get; init; } = "";

    public int BitsPerBitmapSector => (SectorSize - 32) * 8;

    public long LeaseAreaBytes => (1L + MaxHosts) * SectorSize;

    public long LeaderOffset(int resource) => LeaseOffset + (resource * LeaseAreaBytes);

    public long BallotOffset(int resource, int hostSlot) => LeaderOffset(resource) + ((1L + hostSlot) * SectorSize);

    public long HeartbeatSlotOffset(int slot) => HeartbeatOffset + ((long)slot * SectorSize);

    public long DescriptorSectorOffset(int fileIndex) => DescriptorOffset + ((long)fileIndex * SectorSize);

    public long BitmapSectorOffset(int index) => BitmapOffset + ((long)index * SectorSize);

    public long DataBlockOffset(long block) => DataOffset + (block * BlockSize);

    /// <summary>Lays out a datastore on a device of <paramref name="deviceSize"/> bytes.</summary>
    public static Superblock Plan(FormatOptions options, long deviceSize, int sectorSize)
    {
        static long Align(long value, long to) => (value + to - 1) / to * to;

        var b = options.BlockSize;
        if (b < 64 * 1024 || b > 64 << 20 || (b & (b - 1)) != 0)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"block size {b} is not a power of two between 64 KiB and 64 MiB.");
        }

        if (options.MaxHosts is < 1 or > 2000)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"maxHosts {options.MaxHosts} must be between 1 and 2000.");
        }

        if (options.MaxFiles is < 1 or > 65536)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"maxFiles {options.MaxFiles} must be between 1 and 65536.");
        }

        if (Encoding.UTF8.GetByteCount(options.Label) > MaxLabelBytes)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"label '{options.Label}' is longer than {MaxLabelBytes} bytes.");
        }

        options.Timings.Validate();
        var s = sectorSize;
        var journalSectors = Math.Max(64, options.JournalBytes / s);
        var heartbeat = 8192L;
        var lease = Align(heartbeat + ((long)options.MaxHosts * s), 4096);
        var journal = Align(lease + ((options.MaxFiles + 1L) * (1L + options.MaxHosts) * s), 4096);
        var bitmap = Align(journal + ((long)journalSectors * s), 4096);
        var bitsPerSector = (s - 32) * 8;
        // The bitmap's size depends on the number of data blocks, which depends on the bitmap's size:
        // size it for the blocks that would fit with no bitmap at all, which is never too small.
        var upperBlocks = Math.Max(0, (deviceSize - bitmap) / b);
        var bitmapSectors = (int)Math.Max(1, (upperBlocks + bitsPerSector - 1) / bitsPerSector);
        var descriptors = Align(bitmap + ((long)bitmapSectors * s), 4096);
        var data = Align(descriptors + ((long)options.MaxFiles * s), b);
        var dataBlocks = Math.Min(upperBlocks, (deviceSize - data) / b);
        var needed = data + ((long)MinDataBlocks * b);
        if (deviceSize < needed)
        {
            throw new VmfsException(VmfsErrorCode.TooSmall,
                $"the device is {deviceSize} bytes ({deviceSize / (1 << 20)} MiB); a datastore with {options.MaxHosts} hosts, {options.MaxFiles} files and " +
                $"{b / 1024} KiB blocks needs at least {needed} bytes ({(needed + (1 << 20) - 1) / (1 << 20)} MiB). Use a larger device, or fewer hosts/files.");
        }

        if (dataBlocks > uint.MaxValue - 1)
        {
            throw new VmfsException(VmfsErrorCode.InvalidArgument, $"the device holds {dataBlocks} blocks; use a larger block size (at most 2^32-2 blocks).");
        }

        return new Superblock
        {
            State = StateFormatting,
            Uuid = Guid.NewGuid(),
            SectorSize = s,
            BlockSize = b,
            DeviceSize = deviceSize,
            MaxHosts = options.MaxHosts,
            MaxFiles = options.MaxFiles,
            HeartbeatOffset = heartbeat,
            LeaseOffset = lease,
            JournalOffset = journal,
            JournalSectors = journalSectors,
            BitmapSectors = bitmapSectors,
            BitmapOffset = bitmap,
            DescriptorOffset = descriptors,
            DataOffset = data,
            DataBlocks = dataBlocks,
            Timings = options.Timings,
            AllowThinOvercommit = options.AllowThinOvercommit,
            CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            Label = options.Label,
        };
    }

    /// <summary>Serialises into a 512-byte record sealed for <paramref name="selfOffset"/>.</summary>
    public void Write(Span<byte> record, long selfOffset)
    {
        record[..RecordSize].Clear();
        Signature.CopyTo(record[16..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record[24..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(record[28..], State);
        Uuid.TryWriteBytes(record[32..48]);
        BinaryPrimitives.WriteInt32LittleEndian(record[48..], SectorSize);
        BinaryPrimitives.WriteInt32LittleEndian(record[52..], BlockSize);
        BinaryPrimitives.WriteInt64LittleEndian(record[56..], DeviceSize);
        BinaryPrimitives.WriteInt32LittleEndian(record[64..], MaxHosts);
        BinaryPrimitives.WriteInt32LittleEndian(record[68..], MaxFiles);
        BinaryPrimitives.WriteInt64LittleEndian(record[72..], HeartbeatOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record[80..], LeaseOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record[88..], JournalOffset);
        BinaryPrimitives.WriteInt32LittleEndian(record[96..], JournalSectors);
        BinaryPrimitives.WriteInt32LittleEndian(record[100..], BitmapSectors);
        BinaryPrimitives.WriteInt64LittleEndian(record[104..], BitmapOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record[112..], DescriptorOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record[120..], DataOffset);
        BinaryPrimitives.WriteInt64LittleEndian(record[128..], DataBlocks);
        BinaryPrimitives.WriteUInt32LittleEndian(record[136..], (uint)Timings.HeartbeatInterval.TotalMilliseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record[140..], (uint)Timings.FenceAfter.TotalMilliseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record[144..], (uint)Timings.HostDeadAfter.TotalMilliseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record[148..], (uint)Timings.MaxIoLatency.TotalMilliseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record[152..], AllowThinOvercommit ? 1u : 0u);
        BinaryPrimitives.WriteInt64LittleEndian(record[156..], CreatedUnixMs);
        var label = Encoding.UTF8.GetBytes(Label);
        BinaryPrimitives.WriteUInt16LittleEndian(record[164..], (ushort)label.Length);
        label.CopyTo(record[166..]);
        MetadataSector.Seal(record[..RecordSize], MetadataSector.SuperblockMagic, selfOffset);
    }

    /// <summary>
    /// Parses a superblock, telling apart "not a datastore", "newer version", "half-formatted" and corruption.
    /// </summary>
    public static Superblock Read(ReadOnlySpan<byte> record, long selfOffset, string path)
    {
        record = record[..RecordSize];
        if (!record.Slice(16, 8).SequenceEqual(Signature))
        {
            throw new VmfsException(VmfsErrorCode.NotADatastore,
                $"'{path}' is not a VMFS datastore (no VMFS signature at byte {selfOffset + 16}). Format it with `vmctl ds format {path}`.");
        }

        MetadataSector.Verify(record, MetadataSector.SuperblockMagic, selfOffset, selfOffset == PrimaryOffset ? "superblock" : "backup superblock");
        var version = BinaryPrimitives.ReadUInt32LittleEndian(record[24..]);
        if (version > CurrentVersion)
        {
            throw new VmfsException(VmfsErrorCode.NewerVersion,
                $"'{path}' is a VMFS datastore of format version {version}; this version of the software understands version {CurrentVersion} and older. Upgrade vmctl/vmkerneld.");
        }

        var labelLength = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(record[164..]), (ushort)MaxLabelBytes);
        var sb = new Superblock
        {
            Version = version,
            State = BinaryPrimitives.ReadUInt32LittleEndian(record[28..]),
            Uuid = new Guid(record[32..48]),
            SectorSize = BinaryPrimitives.ReadInt32LittleEndian(record[48..]),
            BlockSize = BinaryPrimitives.ReadInt32LittleEndian(record[52..]),
            DeviceSize = BinaryPrimitives.ReadInt64LittleEndian(record[56..]),
            MaxHosts = BinaryPrimitives.ReadInt32LittleEndian(record[64..]),
            MaxFiles = BinaryPrimitives.ReadInt32LittleEndian(record[68..]),
            HeartbeatOffset = BinaryPrimitives.ReadInt64LittleEndian(record[72..]),
            LeaseOffset = BinaryPrimitives.ReadInt64LittleEndian(record[80..]),
            JournalOffset = BinaryPrimitives.ReadInt64LittleEndian(record[88..]),
            JournalSectors = BinaryPrimitives.ReadInt32LittleEndian(record[96..]),
            BitmapSectors = BinaryPrimitives.ReadInt32LittleEndian(record[100..]),
            BitmapOffset = BinaryPrimitives.ReadInt64LittleEndian(record[104..]),
            DescriptorOffset = BinaryPrimitives.ReadInt64LittleEndian(record[112..]),
            DataOffset = BinaryPrimitives.ReadInt64LittleEndian(record[120..]),
            DataBlocks = BinaryPrimitives.ReadInt64LittleEndian(record[128..]),
            Timings = new VmfsTimings
            {
                HeartbeatInterval = TimeSpan.FromMilliseconds(BinaryPrimitives.ReadUInt32LittleEndian(record[136..])),
                FenceAfter = TimeSpan.FromMilliseconds(BinaryPrimitives.ReadUInt32LittleEndian(record[140..])),
                HostDeadAfter = TimeSpan.FromMilliseconds(BinaryPrimitives.ReadUInt32LittleEndian(record[144..])),
                MaxIoLatency = TimeSpan.FromMilliseconds(BinaryPrimitives.ReadUInt32LittleEndian(record[148..])),
            },
            AllowThinOvercommit = (BinaryPrimitives.ReadUInt32LittleEndian(record[152..]) & 1) != 0,
            CreatedUnixMs = BinaryPrimitives.ReadInt64LittleEndian(record[156..]),
            Label = Encoding.UTF8.GetString(record.Slice(166, labelLength)),
        };
        if (sb.SectorSize is not (512 or 4096) || sb.BlockSize <= 0 || sb.MaxHosts <= 0 || sb.MaxFiles <= 0 ||
            sb.DataOffset % sb.BlockSize != 0 || sb.DataBlocks <= 0)
        {
            throw VmfsException.Corrupt("superblock", selfOffset, "its layout fields are out of range although its checksum matches");
        }

        return sb;
    }
}
