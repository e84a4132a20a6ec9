namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Admits device writes while this host may write, and counts the ones in flight so that fencing can wait until
/// the last admitted write has finished before it stands down the kill timer (<see cref="FenceKillTimer"/>).
/// A write is counted before its check and uncounted after the device call returns, so no write that passed
/// its check is ever missed.
/// </summary>
internal interface IWriteGate
{
    /// <summary>Counts a write in flight and returns true if it may be issued; false (uncounted) if not.</summary>
    bool TryEnterWrite();

    /// <summary>Ends a write admitted by <see cref="TryEnterWrite"/>.</summary>
    void ExitWrite();
}

/// <summary>A write admitted by an <see cref="IWriteGate"/>, ended (uncounted) when disposed.</summary>
internal readonly struct AdmittedWrite(IWriteGate gate) : IDisposable
{
    public void Dispose() => gate.ExitWrite();
}

/// <summary>The gate of read-only inspection (fsck without repair, `ds info`): nothing may be written.</summary>
internal sealed class ClosedWriteGate : IWriteGate
{
    public static ClosedWriteGate Instance { get; } = new();

    public bool TryEnterWrite() => false;

    public void ExitWrite()
    {
    }
}
