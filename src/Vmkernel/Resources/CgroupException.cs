namespace Vmk.Vmkernel.Resources;

/// <summary>A cgroup could not be created, changed or read; the message names the file and the cause.</summary>
public sealed class CgroupException : Exception
{
    public CgroupException()
    {
    }

    public CgroupException(string message)
        : base(message)
    {
    }

    public CgroupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
