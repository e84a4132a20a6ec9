namespace Vmk.Operator;

/// <summary>A bad command-line flag; the message names it. vm-operator exits 2 with it.</summary>
public sealed class OptionsException(string message) : Exception(message);
