namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>Base of every failure of the QMP client: connecting, the greeting, or a command.</summary>
public class QmpException : Exception
{
    public QmpException(string message)
        : base(message)
    {
    }

    public QmpException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
