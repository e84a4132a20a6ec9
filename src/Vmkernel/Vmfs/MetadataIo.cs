namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Sector-granular access to the metadata regions. Reads may go through an overlay of journal images that are
/// committed but not yet applied, so read-only inspection sees the state replay would produce without writing.
/// Every write first checks that this host may still write (it has not fenced itself).
/// </summary>
internal sealed class MetadataIo
{
    private readonly IWriteGate? _gate;

    /// <param name="gate">Admits each write (null: no checks, for format and upgrade before any host has joined).</param>
    public MetadataIo(VmfsDevice device, Superblock superblock, IWriteGate? gate)
    {
        Device = device;
        Superblock = superblock;
        _gate = gate;
    }

    public VmfsDevice Device { get; }

    public Superblock Superblock { get; }

    public int SectorSize => Superblock.SectorSize;

    /// <summary>Pending journal images by offset (read-only inspection only).</summary>
    public IReadOnlyDictionary<long, byte[]>? Overlay { get; set; }

    public byte[] ReadSectors(long offset, int count)
    {
        var data = new byte[count * SectorSize];
        Device.Read(offset, data);
        if (Overlay is { Count: > 0 } overlay)
        {
            for (var i = 0; i < count; i++)
            {
                if (overlay.TryGetValue(offset + ((long)i * SectorSize), out var image))
                {
                    image.CopyTo(data.AsSpan(i * SectorSize));
                }
            }
        }

        return data;
    }

    public byte[] ReadSector(long offset) => ReadSectors(offset, 1);

    /// <summary>
    /// Reads and parses a sector another host may be writing at the same moment: a checksum failure is read
    /// again a few times before it is reported, since without O_DIRECT a concurrent reader may see a torn copy.
    /// </summary>
    public T ReadParsed<T>(long offset, Func<byte[], T> parse)
    {
        for (var attempt = 0; ; attempt++)
        {
            var sector = ReadSector(offset);
            try
            {
                return parse(sector);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt && attempt < 3)
            {
                Thread.Yield();
            }
        }
    }

    public void WriteSectors(long offset, ReadOnlySpan<byte> data)
    {
        if (_gate is null)
        {
            Device.Write(offset, data);
            return;
        }

        if (!_gate.TryEnterWrite())
        {
            throw new VmfsException(VmfsErrorCode.Fenced,
                "this host has fenced itself (its heartbeat could not be renewed in time) and no longer writes to the datastore; close and reopen the datastore.");
        }

        using (new AdmittedWrite(_gate))
        {
            Device.Write(offset, data);
        }
    }
}
