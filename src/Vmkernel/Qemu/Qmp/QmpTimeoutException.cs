namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>
/// A command got no reply within its timeout. The connection stays usable: a reply that arrives later is
/// logged and dropped.
/// </summary>
public sealed class QmpTimeoutException : QmpException
{
    public QmpTimeoutException(string command, TimeSpan timeout)
        : base($"QMP command '{command}' got no reply within {timeout.TotalSeconds:0.###} s; QEMU may be hung or overloaded. " +
               "Retry with a longer timeout, or check the QEMU process.")
    {
        Command = command;
        Timeout = timeout;
    }

    public string Command { get; }

    public TimeSpan Timeout { get; }
}
