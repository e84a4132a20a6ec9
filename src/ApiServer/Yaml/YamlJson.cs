using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Vmk.ApiServer.Yaml;

/// <summary>
/// YAML (1.2 core schema, as Kubernetes' sigs.k8s.io/yaml reads it) to System.Text.Json nodes. Plain scalars are
/// typed (null, bool, int, float); quoted ones stay strings.
/// </summary>
public static partial class YamlJson
{
    /// <summary>Every non-empty document of a (possibly multi-document) YAML stream.</summary>
    /// <exception cref="FormatException">The text is not valid YAML; the message names line and column.</exception>
    public static IReadOnlyList<JsonNode> ParseDocuments(string yaml)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new FormatException($"invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.InnerException?.Message ?? e.Message}", e);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner fails this way on some truncated documents.
            throw new FormatException($"invalid YAML: {e.Message}", e);
        }
        var result = new List<JsonNode>();
        foreach (var doc in stream.Documents)
        {
            var node = Convert(doc.RootNode);
            if (node is not null)
            {
                result.Add(node);
            }
        }
        return result;
    }

    public static JsonNode? ParseSingle(string yaml)
    {
        var docs = ParseDocuments(yaml);
        return docs.Count switch
        {
            0 => null,
            1 => docs[0],
            _ => throw new FormatException("expected one YAML document, found " + docs.Count),
        };
    }

    private static JsonNode? Convert(YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    var key = k is YamlScalarNode ks ? ks.Value ?? "" : throw new FormatException($"unsupported non-scalar mapping key at line {k.Start.Line}");
                    obj[key] = Convert(v);
                }
                return obj;
            case YamlSequenceNode seq:
                var arr = new JsonArray();
                foreach (var item in seq.Children)
                {
                    arr.Add(Convert(item));
                }
                return arr;
            case YamlScalarNode scalar:
                return ConvertScalar(scalar);
            default:
                return null;
        }
    }

    private static JsonNode? ConvertScalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
        {
            return JsonValue.Create(text);
        }
        if (!scalar.Tag.IsEmpty && !scalar.Tag.IsNonSpecific && scalar.Tag.Value == "tag:yaml.org,2002:str")
        {
            return JsonValue.Create(text);
        }
        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }
        if (IntPattern().IsMatch(text))
        {
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            {
                return JsonNode.Parse(l.ToString(CultureInfo.InvariantCulture));
            }
        }
        if (FloatPattern().IsMatch(text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
        {
            return JsonNode.Parse(d.ToString("R", CultureInfo.InvariantCulture));
        }
        return JsonValue.Create(text);
    }

    [GeneratedRegex("^[-+]?[0-9]+$")]
    private static partial Regex IntPattern();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();
}
