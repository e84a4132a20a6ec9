namespace Vmk.ApiServer.Api;

/// <summary>Query options of a write: <c>dryRun=All</c>, <c>fieldValidation</c>, <c>fieldManager</c>, <c>force</c>.</summary>
public sealed record WriteOptions(bool DryRun = false, FieldValidation FieldValidation = FieldValidation.Warn, string? FieldManager = null, bool Force = false)
{
    public static readonly WriteOptions Default = new();

    /// <summary>Texts for <c>Warning: 299 - "..."</c> response headers (unknown fields with fieldValidation=Warn).</summary>
    public List<string> Warnings { get; } = [];

    /// <summary>Set by server-side apply: the managedFields to store with the object.</summary>
    internal System.Text.Json.Nodes.JsonArray? ManagedFields { get; set; }
}
