namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// The new images of the metadata sectors one change touches. Reads see the transaction's own images first,
/// so a change can read-modify-write one sector several times. Nothing reaches the device until
/// <see cref="MetadataJournal.Commit"/>.
/// </summary>
internal sealed class MetadataTransaction
{
    private readonly MetadataIo _io;
    private readonly Dictionary<long, byte[]> _images = [];

    public MetadataTransaction(MetadataIo io) => _io = io;

    public int Count => _images.Count;

    public IEnumerable<KeyValuePair<long, byte[]>> Images => _images.OrderBy(i => i.Key);

    /// <summary>The current content of a sector: this transaction's image, else the device's (a copy).</summary>
    public byte[] Get(long offset) =>
        _images.TryGetValue(offset, out var image) ? (byte[])image.Clone() : _io.ReadSector(offset);

    /// <summary>Reads a run of sectors, overlaid with this transaction's images.</summary>
    public byte[] GetRange(long offset, int count)
    {
        var data = _io.ReadSectors(offset, count);
        var s = _io.SectorSize;
        foreach (var (o, image) in _images)
        {
            if (o >= offset && o < offset + ((long)count * s))
            {
                image.CopyTo(data.AsSpan((int)(o - offset)));
            }
        }

        return data;
    }

    /// <summary>Stages a sealed sector image.</summary>
    public void Put(long offset, byte[] sealedSector)
    {
        if (sealedSector.Length != _io.SectorSize || MetadataSector.SelfOffset(sealedSector) != offset)
        {
            throw new InvalidOperationException($"journal image for offset {offset} is not a sealed sector of that offset");
        }

        _images[offset] = sealedSector;
    }
}
