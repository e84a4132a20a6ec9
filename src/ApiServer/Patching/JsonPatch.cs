using System.Text.Json;
using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;

namespace Vmk.ApiServer.Patching;

/// <summary>JSON patch (RFC 6902) with JSON pointers (RFC 6901). A failed operation rejects the whole patch.</summary>
public static class JsonPatch
{
    public static JsonNode? Apply(JsonNode? document, JsonNode? patch)
    {
        if (patch is not JsonArray ops)
        {
            throw ApiException.BadRequest("json patch must be a JSON array of operations");
        }
        var doc = document?.DeepClone();
        for (var i = 0; i < ops.Count; i++)
        {
            if (ops[i] is not JsonObject op || op["op"] is not JsonValue opValue || !opValue.TryGetValue<string>(out var name))
            {
                throw ApiException.BadRequest($"json patch operation {i} has no \"op\"");
            }
            var path = Schema.JsonKinds.GetString(op["path"]) ?? throw ApiException.BadRequest($"json patch operation {i} ({name}) has no \"path\"");
            try
            {
                switch (name)
                {
                    case "add":
                        doc = Add(doc, path, Value(op, i));
                        break;
                    case "remove":
                        doc = Remove(doc, path, out _);
                        break;
                    case "replace":
                        doc = Remove(doc, path, out _);
                        doc = Add(doc, path, Value(op, i));
                        break;
                    case "move":
                        var from = Schema.JsonKinds.GetString(op["from"]) ?? throw ApiException.BadRequest($"json patch operation {i} (move) has no \"from\"");
                        doc = Remove(doc, from, out var moved);
                        doc = Add(doc, path, moved);
                        break;
                    case "copy":
                        var source = Schema.JsonKinds.GetString(op["from"]) ?? throw ApiException.BadRequest($"json patch operation {i} (copy) has no \"from\"");
                        doc = Add(doc, path, Get(doc, source)?.DeepClone());
                        break;
                    case "test":
                        if (!JsonNode.DeepEquals(Get(doc, path), op["value"]))
                        {
                            throw new PatchFailure($"testing value {path} failed");
                        }
                        break;
                    default:
                        throw ApiException.BadRequest($"json patch operation {i}: unknown op \"{name}\"");
                }
            }
            catch (PatchFailure e)
            {
                throw new ApiException(422, "Invalid", $"the server rejected our request due to an error in our request: json patch {name} operation does not apply: {e.Message}");
            }
        }
        return doc;
    }

    private static JsonNode? Value(JsonObject op, int i)
    {
        if (!op.ContainsKey("value"))
        {
            throw ApiException.BadRequest($"json patch operation {i} has no \"value\"");
        }
        return op["value"]?.DeepClone();
    }

    private static List<string> Tokens(string pointer)
    {
        if (pointer.Length == 0)
        {
            return [];
        }
        if (pointer[0] != '/')
        {
            throw new PatchFailure($"invalid JSON pointer \"{pointer}\"");
        }
        return pointer[1..].Split('/').Select(t => t.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToList();
    }

    private static JsonNode? Get(JsonNode? doc, string pointer)
    {
        var node = doc;
        foreach (var t in Tokens(pointer))
        {
            node = node switch
            {
                JsonObject o when o.TryGetPropertyValue(t, out var v) => v,
                JsonArray a when int.TryParse(t, out var idx) && idx >= 0 && idx < a.Count => a[idx],
                _ => throw new PatchFailure($"path {pointer} does not exist"),
            };
        }
        return node;
    }

    private static JsonNode? Add(JsonNode? doc, string pointer, JsonNode? value)
    {
        var tokens = Tokens(pointer);
        if (tokens.Count == 0)
        {
            return value;
        }
        var parent = tokens.Count == 1 ? doc : Get(doc, "/" + string.Join('/', tokens.Take(tokens.Count - 1).Select(Escape)));
        var last = tokens[^1];
        switch (parent)
        {
            case JsonObject o:
                o[last] = value;
                break;
            case JsonArray a:
                if (last == "-")
                {
                    a.Add(value);
                }
                else if (int.TryParse(last, out var idx) && idx >= 0 && idx <= a.Count)
                {
                    a.Insert(idx, value);
                }
                else
                {
                    throw new PatchFailure($"array index {last} out of range in {pointer}");
                }
                break;
            default:
                throw new PatchFailure($"parent of {pointer} is not an object or array");
        }
        return doc;
    }

    private static JsonNode? Remove(JsonNode? doc, string pointer, out JsonNode? removed)
    {
        var tokens = Tokens(pointer);
        if (tokens.Count == 0)
        {
            removed = doc;
            return null;
        }
        var parent = tokens.Count == 1 ? doc : Get(doc, "/" + string.Join('/', tokens.Take(tokens.Count - 1).Select(Escape)));
        var last = tokens[^1];
        switch (parent)
        {
            case JsonObject o when o.TryGetPropertyValue(last, out var v):
                o.Remove(last);
                removed = v;
                break;
            case JsonArray a when int.TryParse(last, out var idx) && idx >= 0 && idx < a.Count:
                removed = a[idx];
                a.RemoveAt(idx);
                break;
            default:
                throw new PatchFailure($"path {pointer} does not exist");
        }
        return doc;
    }

    private static string Escape(string token) => token.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private sealed class PatchFailure(string message) : Exception(message);
}
