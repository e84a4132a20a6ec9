namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// A resource lease on a virtual disk, held until disposed. Held by a host, not a process: it stays valid while
/// the host's heartbeat is renewed, and ends at the latest when the host fences itself.
/// </summary>
public sealed class VmfsLease : IDisposable
{
    private readonly VmfsDatastore _datastore;
    private int _released;

    internal VmfsLease(VmfsDatastore datastore, HeldLease held, string diskName)
    {
        _datastore = datastore;
        Held = held;
        DiskName = diskName;
    }

    public string DiskName { get; }

    public LeaseMode Mode => Held.Mode;

    /// <summary>The lease version (generation) this host acquired.</summary>
    public ulong Version => Held.Version;

    /// <summary>True while the lease is held and this host has not fenced itself.</summary>
    public bool IsValid => Volatile.Read(ref _released) == 0 && _datastore.CanWrite;

    internal HeldLease Held { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _datastore.ReleaseLocal(Held);
        }
    }
}
