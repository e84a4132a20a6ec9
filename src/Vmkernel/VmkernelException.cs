namespace Vmk.Vmkernel;

/// <summary>
/// An error a person can act on: the message names what is wrong and what to do. Thrown for bad input and
/// for host problems (QEMU missing, state directory not writable); callers show the message as is.
/// </summary>
public class VmkernelException : Exception
{
    public VmkernelException(string message) : base(message) { }

    public VmkernelException(string message, Exception inner) : base(message, inner) { }

    public VmkernelException() { }
}
