namespace Vmk.Vmctl.Standalone;

/// <summary>The choices of one <c>vmctl standalone</c> run that its children are started with.</summary>
internal sealed record StandaloneSettings
{
    public required string DatastoreDirectory { get; init; }

    public required string ImageDirectory { get; init; }

    public required string Accelerator { get; init; }

    public bool Verbose { get; init; }

    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(120);
}
