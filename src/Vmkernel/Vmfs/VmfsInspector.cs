namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Read-only inspection of a datastore without joining it (`vmctl ds info|ls|locks`): no heartbeat slot is
/// taken and nothing is written. A committed but unapplied journal transaction is overlaid in memory, so what
/// is shown is what replay will produce.
/// </summary>
public static class VmfsInspector
{
    public static DatastoreInfo GetInfo(string path) => With(path, (reader, pending) => reader.Info(pending));

    public static IReadOnlyList<VirtualDiskInfo> List(string path) => With(path, (reader, _) => reader.List());

    public static IReadOnlyList<LockInfo> GetLocks(string path) => With(path, (reader, _) => reader.Locks());

    public static IReadOnlyList<HostInfo> GetHosts(string path) => With(path, (reader, _) => reader.Hosts());

    internal static T With<T>(string path, Func<DatastoreReader, bool, T> use)
    {
        using var device = VmfsDevice.Open(path, writable: false);
        var sb = SuperblockLoader.Load(device);
        var io = new MetadataIo(device, sb, ClosedWriteGate.Instance);
        var pending = new MetadataJournal(io, null).ReadPending();
        if (pending.Count > 0)
        {
            io.Overlay = pending.ToDictionary(p => p.Offset, p => p.Image);
        }

        return use(new DatastoreReader(io, path), pending.Count > 0);
    }
}
