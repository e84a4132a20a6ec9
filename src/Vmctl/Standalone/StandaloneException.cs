namespace Vmk.Vmctl.Standalone;

/// <summary>A standalone start-up problem with a message a person can act on.</summary>
internal sealed class StandaloneException(string message) : Exception(message);
