namespace Vmk.Vmkernel.Vmfs;

/// <summary>How a host holds a resource lease.</summary>
public enum LeaseMode
{
    /// <summary>Not held.</summary>
    Free = 0,
    /// <summary>One writer; no other host may open the disk at all.</summary>
    Exclusive = 1,
    /// <summary>Many readers on many hosts; no writer.</summary>
    SharedRead = 2,
}
