namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>QEMU answered a command with <c>{"error": {"class": ..., "desc": ...}}</c>.</summary>
public sealed class QmpCommandException : QmpException
{
    public QmpCommandException(string command, string errorClass, string description)
        : base($"QMP command '{command}' failed: {errorClass}: {description}")
    {
        Command = command;
        ErrorClass = errorClass;
        Description = description;
    }

    /// <summary>The QMP command that failed, e.g. <c>migrate</c>.</summary>
    public string Command { get; }

    /// <summary>QEMU's error class, e.g. <c>CommandNotFound</c>, <c>GenericError</c>, <c>DeviceNotActive</c>.</summary>
    public string ErrorClass { get; }

    /// <summary>QEMU's human-readable description of the error.</summary>
    public string Description { get; }
}
