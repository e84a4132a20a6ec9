namespace Vmk.Vmkernel.Nbd;

/// <summary>The kinds of I/O an export counts separately.</summary>
public enum NbdOperation
{
    Read,
    Write,
    Flush,
    Trim,
    WriteZeroes,
    BlockStatus,
}
