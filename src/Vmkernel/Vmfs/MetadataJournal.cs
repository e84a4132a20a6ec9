using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The redo journal (one per datastore, used only by the holder of the metadata lock). Commit order:
/// <list type="number">
/// <item>write the new sector images into the journal area, flush;</item>
/// <item>write the header "committed" with the images' checksum, flush: the change is now durable;</item>
/// <item>write the images to their places, flush;</item>
/// <item>write the header "applied".</item>
/// </list>
/// A crash before 2 leaves the old state (the images are ignored); a crash after 2 leaves a committed header,
/// and whoever takes the metadata lock next (or joins, or fsck) replays it. Images are whole sectors that carry
/// their destination, so replaying twice is harmless.
/// </summary>
internal sealed class MetadataJournal
{
    private readonly MetadataIo _io;
    private readonly ILogger? _logger;

    public MetadataJournal(MetadataIo io, ILogger? logger)
    {
        _io = io;
        _logger = logger;
    }

    private Superblock Sb => _io.Superblock;

    public int Capacity => Sb.JournalSectors - 1;

    public JournalHeader ReadHeader() =>
        _io.ReadParsed(Sb.JournalOffset, s => JournalHeader.Read(s, Sb.JournalOffset));

    /// <summary>The images of a committed, unapplied transaction; empty when there is none.</summary>
    public IReadOnlyList<(long Offset, byte[] Image)> ReadPending()
    {
        var header = ReadHeader();
        if (header.State != JournalHeader.StateCommitted)
        {
            return [];
        }

        if (header.ImageCount < 0 || header.ImageCount > Capacity)
        {
            throw VmfsException.Corrupt("journal header", Sb.JournalOffset, $"image count {header.ImageCount} exceeds the journal's {Capacity} sectors");
        }

        var s = Sb.SectorSize;
        var images = ReadImages(header.ImageCount);
        var result = new List<(long, byte[])>(header.ImageCount);
        var crc = ~0u;
        for (var i = 0; i < header.ImageCount; i++)
        {
            var image = images.AsSpan(i * s, s).ToArray();
            var target = MetadataSector.SelfOffset(image);
            var problem = MetadataSector.Check(image, MetadataSector.Magic(image), target);
            var at = Sb.JournalOffset + ((1L + i) * s);
            if (problem is not null)
            {
                throw VmfsException.Corrupt($"journal image {i} (sequence {header.Sequence})", at, problem);
            }

            if (target < Sb.HeartbeatOffset || target >= Sb.DeviceSize)
            {
                throw VmfsException.Corrupt($"journal image {i} (sequence {header.Sequence})", at, $"its destination {target} lies outside the datastore");
            }

            crc = Crc32C.Append(crc, image.AsSpan(4, 4));
            result.Add((target, image));
        }

        if (~crc != header.ImagesChecksum)
        {
            throw VmfsException.Corrupt("journal header", Sb.JournalOffset,
                $"its images do not match the checksum committed with them (sequence {header.Sequence})");
        }

        return result;
    }

    /// <summary>Applies a committed transaction left by a crashed (or fenced) holder. True if there was one.</summary>
    public bool Replay()
    {
        var header = ReadHeader();
        var pending = ReadPending();
        if (pending.Count == 0)
        {
            return false;
        }

        _logger?.LogWarning("Replaying journal transaction {Sequence} ({Count} sectors) left by host slot {Slot}",
            header.Sequence, pending.Count, header.WriterSlot);
        Apply(pending);
        _io.Device.Flush();
        WriteHeader(header with { State = JournalHeader.StateApplied });
        _io.Device.Flush();
        return true;
    }

    public void Commit(MetadataTransaction transaction, int writerSlot, ulong writerGeneration)
    {
        if (transaction.Count == 0)
        {
            return;
        }

        if (transaction.Count > Capacity)
        {
            throw new VmfsException(VmfsErrorCode.NoSpace,
                $"this change touches {transaction.Count} metadata sectors but the journal holds {Capacity}; split it into smaller steps (e.g. resize in smaller increments).");
        }

        var previous = ReadHeader();
        var s = Sb.SectorSize;
        var images = transaction.Images.ToList();
        var buffer = new byte[images.Count * s];
        var crc = ~0u;
        for (var i = 0; i < images.Count; i++)
        {
            images[i].Value.CopyTo(buffer, i * s);
            crc = Crc32C.Append(crc, images[i].Value.AsSpan(4, 4));
        }

        _io.WriteSectors(Sb.JournalOffset + s, buffer);
        _io.Device.Flush();
        VmfsFaultInjection.At("journal-images-written");
        WriteHeader(new JournalHeader
        {
            State = JournalHeader.StateCommitted,
            ImageCount = images.Count,
            Sequence = previous.Sequence + 1,
            ImagesChecksum = ~crc,
            WriterSlot = writerSlot,
            WriterGeneration = writerGeneration,
            CommittedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        });
        _io.Device.Flush();
        VmfsFaultInjection.At("journal-committed");
        Apply(images.Select(i => (i.Key, i.Value)).ToList());
        _io.Device.Flush();
        VmfsFaultInjection.At("journal-applied");
        WriteHeader(new JournalHeader
        {
            State = JournalHeader.StateApplied,
            ImageCount = images.Count,
            Sequence = previous.Sequence + 1,
            ImagesChecksum = ~crc,
            WriterSlot = writerSlot,
            WriterGeneration = writerGeneration,
            CommittedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        });
    }

    public void WriteEmptyHeader()
    {
        WriteHeader(new JournalHeader { State = JournalHeader.StateEmpty });
    }

    private void Apply(IReadOnlyList<(long Offset, byte[] Image)> images)
    {
        // Coalesce adjacent sectors into one write: a resize can touch thousands of neighbouring map sectors.
        var s = Sb.SectorSize;
        var sorted = images.OrderBy(i => i.Offset).ToList();
        var half = sorted.Count / 2;
        for (var i = 0; i < sorted.Count;)
        {
            var j = i + 1;
            while (j < sorted.Count && sorted[j].Offset == sorted[j - 1].Offset + s && j - i < 256)
            {
                j++;
            }

            var run = new byte[(j - i) * s];
            for (var k = i; k < j; k++)
            {
                sorted[k].Image.CopyTo(run, (k - i) * s);
            }

            _io.WriteSectors(sorted[i].Offset, run);
            if (i <= half && j > half)
            {
                VmfsFaultInjection.At("journal-half-applied");
            }

            i = j;
        }
    }

    private byte[] ReadImages(int count) => count == 0 ? [] : _io.ReadSectors(Sb.JournalOffset + Sb.SectorSize, count);

    private void WriteHeader(JournalHeader header)
    {
        var sector = new byte[Sb.SectorSize];
        header.Write(sector, Sb.JournalOffset);
        _io.WriteSectors(Sb.JournalOffset, sector);
    }
}
