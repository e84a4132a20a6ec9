using System.Text.Json.Nodes;
using Vmk.ApiServer.Yaml;

namespace Vmk.Packaging.Tests;

/// <summary>Rendered manifests as JSON objects (the API server's own YAML reader, as kubectl's would read them).</summary>
public sealed class Manifests
{
    private Manifests(List<JsonObject> objects) => Objects = objects;

    public IReadOnlyList<JsonObject> Objects { get; }

    public static Manifests Parse(string yaml) => new(YamlJson.ParseDocuments(yaml).OfType<JsonObject>().ToList());

    public IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => Kind(o) == kind);

    public JsonObject Single(string kind, string name)
    {
        var matches = OfKind(kind).Where(o => Name(o) == name).ToList();
        Assert.True(matches.Count == 1, $"expected one {kind} {name}, found {matches.Count}; rendered: {string.Join(", ", Objects.Select(o => Kind(o) + "/" + Name(o)))}");
        return matches[0];
    }

    public static string Kind(JsonNode o) => (string?)o["kind"] ?? "";

    public static string Name(JsonNode o) => (string?)o["metadata"]?["name"] ?? "";

    /// <summary>
    /// Input for `kubectl apply -f -`: a YAML stream of JSON documents. The leading comment makes kubectl read it as
    /// YAML (one document per object) rather than as a single JSON value.
    /// </summary>
    public static string ToYaml(IEnumerable<JsonObject> objects) =>
        "# objects rendered by helm template\n" + string.Join("\n---\n", objects.Select(o => o.ToJsonString()));
}
