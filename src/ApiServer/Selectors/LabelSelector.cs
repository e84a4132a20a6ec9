using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;

namespace Vmk.ApiServer.Selectors;

/// <summary>
/// Kubernetes label selector syntax: <c>a=b</c>, <c>a==b</c>, <c>a!=b</c>, <c>a in (x,y)</c>, <c>a notin (x)</c>,
/// <c>a</c>, <c>!a</c>, comma-separated and ANDed.
/// </summary>
public sealed class LabelSelector
{
    private readonly List<Func<IReadOnlyDictionary<string, string>, bool>> _requirements = [];

    public static LabelSelector? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        var selector = new LabelSelector();
        foreach (var term in SplitTerms(text))
        {
            selector._requirements.Add(ParseTerm(term.Trim(), text));
        }
        return selector;
    }

    public bool Matches(JsonObject obj)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (obj["metadata"]?["labels"] is JsonObject l)
        {
            foreach (var (k, v) in l)
            {
                labels[k] = v is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : v?.ToJsonString() ?? "";
            }
        }
        return _requirements.All(r => r(labels));
    }

    private static IEnumerable<string> SplitTerms(string text)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '(')
            {
                depth++;
            }
            else if (text[i] == ')')
            {
                depth--;
            }
            else if (text[i] == ',' && depth == 0)
            {
                yield return text[start..i];
                start = i + 1;
            }
        }
        yield return text[start..];
    }

    private static Func<IReadOnlyDictionary<string, string>, bool> ParseTerm(string term, string whole)
    {
        if (term.Length == 0)
        {
            throw ApiException.BadRequest($"unable to parse requirement: empty term in label selector \"{whole}\"");
        }
        if (term.StartsWith('!'))
        {
            var key = CheckKey(term[1..].Trim(), whole);
            return labels => !labels.ContainsKey(key);
        }
        foreach (var op in new[] { "!=", "==", "=" })
        {
            var idx = term.IndexOf(op, StringComparison.Ordinal);
            if (idx > 0)
            {
                var key = CheckKey(term[..idx].Trim(), whole);
                var value = term[(idx + op.Length)..].Trim();
                return op == "!="
                    ? labels => !labels.TryGetValue(key, out var v) || v != value
                    : labels => labels.TryGetValue(key, out var v) && v == value;
            }
        }
        var parts = term.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 2)
        {
            var key = CheckKey(parts[0], whole);
            var rest = parts[1];
            var notIn = rest.StartsWith("notin", StringComparison.Ordinal);
            var isIn = rest.StartsWith("in", StringComparison.Ordinal);
            var open = rest.IndexOf('(', StringComparison.Ordinal);
            if ((isIn || notIn) && open > 0 && rest.EndsWith(')'))
            {
                var values = rest[(open + 1)..^1].Split(',', StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
                return notIn
                    ? labels => !labels.TryGetValue(key, out var v) || !values.Contains(v)
                    : labels => labels.TryGetValue(key, out var v) && values.Contains(v);
            }
            throw ApiException.BadRequest($"unable to parse requirement: \"{term}\" in label selector \"{whole}\"");
        }
        var existsKey = CheckKey(term, whole);
        return labels => labels.ContainsKey(existsKey);
    }

    private static string CheckKey(string key, string whole)
    {
        if (key.Length == 0 || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/')))
        {
            throw ApiException.BadRequest($"unable to parse requirement: invalid label key \"{key}\" in label selector \"{whole}\"");
        }
        return key;
    }
}
