namespace Vmk.NodeDaemon.Agent;

/// <summary>A VM's reservations do not fit in what the host has left; the message names the resource and the shortfall.</summary>
public sealed class AdmissionException : Exception
{
    public AdmissionException(string message) : base(message) { }

    public AdmissionException() { }

    public AdmissionException(string message, Exception inner) : base(message, inner) { }
}
