using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Registry;

namespace Vmk.ApiServer.Selectors;

/// <summary>
/// Field selectors (<c>f=v</c>, <c>f==v</c>, <c>f!=v</c>, comma-separated) over the fields a resource declares
/// selectable: metadata.name and metadata.namespace for every type, and a few per-type fields (Event's
/// involvedObject.*), as kube-apiserver; an unsupported field is a 400 naming it.
/// </summary>
public sealed class FieldSelector
{
    private readonly List<(string[] Path, string Value, bool Negate)> _terms = [];

    public static FieldSelector? Parse(string? text, ResourceDefinition def)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        var selector = new FieldSelector();
        foreach (var raw in text.Split(','))
        {
            var term = raw.Trim();
            if (term.Length == 0)
            {
                continue;
            }
            var negate = term.Contains("!=", StringComparison.Ordinal);
            var op = negate ? "!=" : term.Contains("==", StringComparison.Ordinal) ? "==" : "=";
            var idx = term.IndexOf(op, StringComparison.Ordinal);
            if (idx <= 0)
            {
                throw ApiException.BadRequest($"invalid selector: '{text}'; can't understand '{term}'");
            }
            var label = term[..idx].Trim();
            var value = term[(idx + op.Length)..].Trim();
            var stored = def.Converter?.MapFieldLabel(label) ?? label;
            if (label is not ("metadata.name" or "metadata.namespace") && !def.SelectableFields.Contains(stored))
            {
                throw ApiException.BadRequest($"field label not supported: {label}");
            }
            selector._terms.Add((stored.Split('.'), value, negate));
        }
        return selector._terms.Count == 0 ? null : selector;
    }

    /// <summary>Evaluated on the stored form of the object.</summary>
    public bool Matches(JsonObject obj)
    {
        foreach (var (path, value, negate) in _terms)
        {
            JsonNode? node = obj;
            foreach (var part in path)
            {
                node = node is JsonObject o ? o[part] : null;
            }
            var actual = node switch
            {
                null => "",
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                _ => node.ToJsonString(),
            };
            if ((actual == value) == negate)
            {
                return false;
            }
        }
        return true;
    }
}
