namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>Thrown when KVM is forced by configuration but the host cannot provide it.</summary>
public sealed class AcceleratorUnavailableException : Exception
{
    public AcceleratorUnavailableException()
    {
    }

    public AcceleratorUnavailableException(string message)
        : base(message)
    {
    }

    public AcceleratorUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
