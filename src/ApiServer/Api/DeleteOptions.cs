namespace Vmk.ApiServer.Api;

/// <summary>The parts of meta/v1 DeleteOptions that matter here.</summary>
public sealed record DeleteOptions(string PropagationPolicy = "Background", string? PreconditionUid = null, string? PreconditionResourceVersion = null, bool DryRun = false);
