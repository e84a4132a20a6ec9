namespace Vmk.Vmkernel.Nbd;

/// <summary>A consistent-enough copy of one export's counters for the metrics endpoint.</summary>
public sealed record NbdExportSnapshot(
    string Name,
    long Size,
    bool ReadOnly,
    int Connections,
    long ConnectionsTotal,
    NbdOperationStats Read,
    NbdOperationStats Write,
    NbdOperationStats Flush,
    NbdOperationStats Trim,
    NbdOperationStats WriteZeroes,
    NbdOperationStats BlockStatus);
