namespace Vmk.Vmkernel.Migration;

/// <summary>What kind of problem stopped a migration, for callers that map it (gRPC status codes).</summary>
public enum MigrationErrorKind
{
    /// <summary>The migration ran and failed or was cancelled; the guest runs on the source.</summary>
    Failed,

    /// <summary>A host cannot take part as it is (no TLS credentials, a VM of that name already there).</summary>
    Precondition,

    /// <summary>The request itself is wrong (a bad id or target address).</summary>
    InvalidArgument,

    /// <summary>No migration of that id on this host.</summary>
    NotFound,
}
