using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Schema;

/// <summary>
/// One node of a CRD's structural OpenAPI v3 schema: the subset of keywords and x-kubernetes-* extensions
/// that kube-apiserver enforces for custom resources and that this project's CRDs use.
/// </summary>
public sealed class SchemaNode
{
    public string? Type { get; private init; }

    public string? Format { get; private init; }

    public string? Description { get; private init; }

    public IReadOnlyDictionary<string, SchemaNode> Properties { get; private init; } = new Dictionary<string, SchemaNode>();

    public SchemaNode? Items { get; private init; }

    /// <summary>Schema of map values (<c>additionalProperties: {schema}</c>).</summary>
    public SchemaNode? AdditionalProperties { get; private init; }

    /// <summary><c>additionalProperties: true</c>: any value, kept.</summary>
    public bool AdditionalPropertiesAllowed { get; private init; }

    public IReadOnlyList<string> Required { get; private init; } = [];

    public IReadOnlyList<JsonNode?>? Enum { get; private init; }

    public double? Minimum { get; private init; }

    public double? Maximum { get; private init; }

    public bool ExclusiveMinimum { get; private init; }

    public bool ExclusiveMaximum { get; private init; }

    public long? MinLength { get; private init; }

    public long? MaxLength { get; private init; }

    public string? Pattern { get; private init; }

    public long? MinItems { get; private init; }

    public long? MaxItems { get; private init; }

    public long? MinProperties { get; private init; }

    public long? MaxProperties { get; private init; }

    public JsonNode? Default { get; private init; }

    public bool Nullable { get; private init; }

    public bool PreserveUnknownFields { get; private init; }

    public bool IntOrString { get; private init; }

    public bool EmbeddedResource { get; private init; }

    public string? ListType { get; private init; }

    public IReadOnlyList<string> ListMapKeys { get; private init; } = [];

    /// <summary>The keyword object as written in the CRD, for OpenAPI publication.</summary>
    public JsonObject Source { get; private init; } = new();

    public static SchemaNode Parse(JsonObject json)
    {
        var properties = new Dictionary<string, SchemaNode>(StringComparer.Ordinal);
        if (json["properties"] is JsonObject props)
        {
            foreach (var (name, value) in props)
            {
                if (value is JsonObject child)
                {
                    properties[name] = Parse(child);
                }
            }
        }

        SchemaNode? additional = null;
        var additionalAllowed = false;
        switch (json["additionalProperties"])
        {
            case JsonObject ap:
                additional = Parse(ap);
                break;
            case JsonValue bv when bv.GetValueKind() == JsonValueKind.True:
                additionalAllowed = true;
                break;
        }

        return new SchemaNode
        {
            Type = Str(json, "type"),
            Format = Str(json, "format"),
            Description = Str(json, "description"),
            Properties = properties,
            Items = json["items"] is JsonObject items ? Parse(items) : null,
            AdditionalProperties = additional,
            AdditionalPropertiesAllowed = additionalAllowed,
            Required = json["required"] is JsonArray req ? req.Select(JsonKinds.GetString).OfType<string>().ToList() : [],
            Enum = json["enum"] is JsonArray en ? en.Select(e => e?.DeepClone()).ToList() : null,
            Minimum = Num(json, "minimum"),
            Maximum = Num(json, "maximum"),
            ExclusiveMinimum = Bool(json, "exclusiveMinimum"),
            ExclusiveMaximum = Bool(json, "exclusiveMaximum"),
            MinLength = Int(json, "minLength"),
            MaxLength = Int(json, "maxLength"),
            Pattern = Str(json, "pattern"),
            MinItems = Int(json, "minItems"),
            MaxItems = Int(json, "maxItems"),
            MinProperties = Int(json, "minProperties"),
            MaxProperties = Int(json, "maxProperties"),
            Default = json["default"]?.DeepClone(),
            Nullable = Bool(json, "nullable"),
            PreserveUnknownFields = Bool(json, "x-kubernetes-preserve-unknown-fields"),
            IntOrString = Bool(json, "x-kubernetes-int-or-string"),
            EmbeddedResource = Bool(json, "x-kubernetes-embedded-resource"),
            ListType = Str(json, "x-kubernetes-list-type"),
            ListMapKeys = json["x-kubernetes-list-map-keys"] is JsonArray keys ? keys.Select(JsonKinds.GetString).OfType<string>().ToList() : [],
            Source = json,
        };
    }

    private static string? Str(JsonObject o, string key)
        => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    private static bool Bool(JsonObject o, string key)
        => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.True;

    private static double? Num(JsonObject o, string key)
        => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;

    private static long? Int(JsonObject o, string key)
        => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? (long)v.GetValue<double>() : null;
}
