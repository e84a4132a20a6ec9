namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>
/// The QMP connection closed before the command was answered: QEMU exited (or was killed), closed the socket,
/// or the client was disposed.
/// </summary>
public sealed class QmpConnectionClosedException : QmpException
{
    public QmpConnectionClosedException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
