using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Registry;

/// <summary>
/// The JSONPath subset that additionalPrinterColumns use: <c>.a.b</c>, <c>.a[0]</c>, <c>.a[*].b</c>,
/// <c>['key.with.dots']</c> and equality filters <c>.a[?(@.type=="Ready")].status</c>.
/// </summary>
public static class SimpleJsonPath
{
    public static bool IsSupported(string path)
    {
        try
        {
            _ = Evaluate(new JsonObject(), path);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public static List<JsonNode?> Evaluate(JsonNode? root, string path)
    {
        var p = path.Trim();
        if (p.StartsWith('{') && p.EndsWith('}'))
        {
            p = p[1..^1];
        }
        if (p.StartsWith('$'))
        {
            p = p[1..];
        }
        var current = new List<JsonNode?> { root };
        var i = 0;
        while (i < p.Length)
        {
            if (p[i] == '.')
            {
                i++;
                var start = i;
                while (i < p.Length && p[i] != '.' && p[i] != '[')
                {
                    i++;
                }
                var name = p[start..i];
                if (name.Length == 0)
                {
                    continue;
                }
                current = Step(current, name);
            }
            else if (p[i] == '[')
            {
                var end = FindClose(p, i);
                var inner = p[(i + 1)..end].Trim();
                i = end + 1;
                current = Bracket(current, inner);
            }
            else
            {
                throw new FormatException($"unexpected '{p[i]}' in JSONPath {path}");
            }
        }
        return current;
    }

    private static int FindClose(string p, int open)
    {
        var depth = 0;
        var quote = '\0';
        for (var i = open; i < p.Length; i++)
        {
            var c = p[i];
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                continue;
            }
            if (c is '"' or '\'')
            {
                quote = c;
            }
            else if (c == '[')
            {
                depth++;
            }
            else if (c == ']' && --depth == 0)
            {
                return i;
            }
        }
        throw new FormatException("unclosed '[' in JSONPath");
    }

    private static List<JsonNode?> Step(List<JsonNode?> nodes, string name)
    {
        var result = new List<JsonNode?>();
        foreach (var n in nodes)
        {
            if (n is JsonObject o && o.TryGetPropertyValue(name, out var v))
            {
                result.Add(v);
            }
        }
        return result;
    }

    private static List<JsonNode?> Bracket(List<JsonNode?> nodes, string inner)
    {
        var result = new List<JsonNode?>();
        if (inner == "*")
        {
            foreach (var n in nodes)
            {
                if (n is JsonArray a)
                {
                    result.AddRange(a);
                }
                else if (n is JsonObject o)
                {
                    result.AddRange(o.Select(kv => kv.Value));
                }
            }
            return result;
        }
        if (inner.Length >= 2 && (inner[0] is '\'' or '"') && inner[^1] == inner[0])
        {
            return Step(nodes, inner[1..^1]);
        }
        if (int.TryParse(inner, out var index))
        {
            foreach (var n in nodes)
            {
                if (n is JsonArray a)
                {
                    var k = index < 0 ? a.Count + index : index;
                    if (k >= 0 && k < a.Count)
                    {
                        result.Add(a[k]);
                    }
                }
            }
            return result;
        }
        if (inner.StartsWith("?(", StringComparison.Ordinal) && inner.EndsWith(')'))
        {
            var expr = inner[2..^1].Trim();
            var negate = expr.Contains("!=", StringComparison.Ordinal);
            var parts = expr.Split(negate ? "!=" : "==", 2, StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !parts[0].StartsWith("@", StringComparison.Ordinal))
            {
                throw new FormatException($"unsupported JSONPath filter {inner}");
            }
            var literal = parts[1].Trim('"', '\'');
            foreach (var n in nodes)
            {
                if (n is not JsonArray a)
                {
                    continue;
                }
                foreach (var item in a)
                {
                    var values = Evaluate(item, parts[0][1..]);
                    var text = values.Count > 0 ? Render(values[0]) : null;
                    if ((text == literal) != negate)
                    {
                        result.Add(item);
                    }
                }
            }
            return result;
        }
        throw new FormatException($"unsupported JSONPath element [{inner}]");
    }

    private static string? Render(JsonNode? n) => n is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String
        ? v.GetValue<string>()
        : n?.ToJsonString();
}
