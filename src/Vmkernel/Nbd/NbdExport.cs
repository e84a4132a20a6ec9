using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// One named export of an <see cref="NbdServer"/>: a block device, whether it refuses writes, its counters and the
/// connections currently using it. The server does not own the device: after
/// <see cref="NbdServer.RemoveExportAsync"/> returns no request touches it any more and the caller may dispose it.
/// </summary>
public sealed class NbdExport
{
    private readonly object _gate = new();
    private readonly HashSet<NbdConnection> _connections = [];
    private TaskCompletionSource? _drained;
    private long _connectionsTotal;

    internal NbdExport(string name, IBlockDevice device, bool readOnly, string? description)
    {
        Name = name;
        Device = device;
        ReadOnly = readOnly || device.IsReadOnly;
        Description = description;
        Size = device.Size;
    }

    public string Name { get; }

    public IBlockDevice Device { get; }

    /// <summary>Writes, trims and write-zeroes are refused with EPERM (clone bases, exports opened shared-read).</summary>
    public bool ReadOnly { get; }

    public string? Description { get; }

    /// <summary>Size in bytes, fixed when the export was added (NBD has no resize).</summary>
    public long Size { get; }

    internal NbdExportCounters Counters { get; } = new();

    internal bool IsRemoved { get; private set; }

    public int ConnectionCount
    {
        get
        {
            lock (_gate)
            {
                return _connections.Count;
            }
        }
    }

    public NbdExportSnapshot GetSnapshot() => new(
        Name,
        Size,
        ReadOnly,
        ConnectionCount,
        Interlocked.Read(ref _connectionsTotal),
        Counters.Snapshot(NbdOperation.Read),
        Counters.Snapshot(NbdOperation.Write),
        Counters.Snapshot(NbdOperation.Flush),
        Counters.Snapshot(NbdOperation.Trim),
        Counters.Snapshot(NbdOperation.WriteZeroes),
        Counters.Snapshot(NbdOperation.BlockStatus));

    /// <summary>Registers a connection entering transmission; false once the export is being removed.</summary>
    internal bool TryAttach(NbdConnection connection)
    {
        lock (_gate)
        {
            if (IsRemoved)
            {
                return false;
            }

            _connections.Add(connection);
            _connectionsTotal++;
            return true;
        }
    }

    /// <summary>Called by a connection once it has finished every request it had in flight.</summary>
    internal void Detach(NbdConnection connection)
    {
        TaskCompletionSource? drained = null;
        lock (_gate)
        {
            _connections.Remove(connection);
            if (_connections.Count == 0)
            {
                drained = _drained;
            }
        }

        drained?.TrySetResult();
    }

    /// <summary>Refuses new connections, disconnects current ones and completes when none is left.</summary>
    internal Task RemoveAsync()
    {
        NbdConnection[] current;
        Task drained;
        lock (_gate)
        {
            IsRemoved = true;
            current = [.. _connections];
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_connections.Count == 0)
            {
                _drained.TrySetResult();
            }

            drained = _drained.Task;
        }

        foreach (var connection in current)
        {
            connection.Abort("export removed");
        }

        return drained;
    }
}
