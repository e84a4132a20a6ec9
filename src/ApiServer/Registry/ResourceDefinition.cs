using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Schema;

namespace Vmk.ApiServer.Registry;

/// <summary>Everything the server knows about one resource of one group/version.</summary>
public sealed class ResourceDefinition
{
    public required string Group { get; init; }

    public required string Version { get; init; }

    public required string Kind { get; init; }

    public required string Plural { get; init; }

    public required string Singular { get; init; }

    public string ListKind => Kind + "List";

    public bool Namespaced { get; init; }

    public IReadOnlyList<string> ShortNames { get; init; } = [];

    public IReadOnlyList<string> Categories { get; init; } = [];

    public bool StatusSubresource { get; init; }

    /// <summary>Structural schema of a custom resource; null for built-in types (they have their own checks).</summary>
    public SchemaNode? Schema { get; init; }

    /// <summary>The schema as published in OpenAPI v3 (CRD schema, or a hand-written one for built-in types).</summary>
    public JsonObject? OpenApiSchema { get; init; }

    public IReadOnlyList<PrinterColumn> Columns { get; init; } = [];

    public bool IsCustom { get; init; }

    /// <summary>CRs and CRDs carry metadata.generation; ConfigMaps and Secrets do not.</summary>
    public bool HasGeneration { get; init; }

    /// <summary>kube-apiserver refuses updates without metadata.resourceVersion for custom resources.</summary>
    public bool AllowUnconditionalUpdate { get; init; } = true;

    /// <summary>Two APIs may share one storage (core and events.k8s.io Events).</summary>
    public string StorageResource => StorageResourceOverride ?? $"{Group}/{Plural}";

    public string? StorageResourceOverride { get; init; }

    public IObjectConverter? Converter { get; init; }

    /// <summary>Field selector labels beyond metadata.name and metadata.namespace, as stored field paths.</summary>
    public IReadOnlyList<string> SelectableFields { get; init; } = [];

    /// <summary>Type-specific validation and normalisation of built-in types (run before storing).</summary>
    public Func<JsonObject, JsonObject?, List<FieldError>>? ValidateBuiltin { get; init; }

    /// <summary>The CRD that defined this resource, for the "CRD deleted -> its objects deleted" rule.</summary>
    public string? CrdName { get; init; }

    public string GroupVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    public string GroupResource => Group.Length == 0 ? Plural : $"{Plural}.{Group}";

    public IReadOnlyList<string> Verbs { get; init; } = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

    public override string ToString() => $"{GroupVersion}/{Plural}";
}
