namespace Vmk.Vmkernel.Migration;

/// <summary>A live migration that did not complete; the message says why and where the guest runs now.</summary>
public sealed class MigrationException : VmkernelException
{
    public MigrationException(string message, MigrationErrorKind kind = MigrationErrorKind.Failed) : base(message) => Kind = kind;

    public MigrationException(string message, Exception inner) : base(message, inner) { }

    public MigrationException() { }

    public MigrationErrorKind Kind { get; }
}
