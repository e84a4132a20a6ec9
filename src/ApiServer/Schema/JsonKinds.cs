using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Schema;

/// <summary>Type questions about JSON values, independent of how the node was created.</summary>
public static class JsonKinds
{
    public static JsonValueKind Kind(JsonNode? node) => node switch
    {
        null => JsonValueKind.Null,
        JsonObject => JsonValueKind.Object,
        JsonArray => JsonValueKind.Array,
        JsonValue v => v.GetValueKind(),
        _ => JsonValueKind.Undefined,
    };

    public static bool TryGetNumber(JsonNode? node, out double value)
    {
        value = 0;
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
        {
            return false;
        }
        if (v.TryGetValue(out double d)) { value = d; return true; }
        if (v.TryGetValue(out long l)) { value = l; return true; }
        if (v.TryGetValue(out int i)) { value = i; return true; }
        if (v.TryGetValue(out decimal m)) { value = (double)m; return true; }
        if (v.TryGetValue(out JsonElement e) && e.TryGetDouble(out d)) { value = d; return true; }
        return double.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out value);
    }

    public static bool IsInteger(JsonNode? node)
    {
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
        {
            return false;
        }
        var text = v.ToJsonString();
        if (!text.Contains('.') && !text.Contains('e') && !text.Contains('E'))
        {
            return true;
        }
        return TryGetNumber(node, out var d) && Math.Abs(d - Math.Round(d)) < double.Epsilon && Math.Abs(d) < 9.2e18;
    }

    /// <summary>The JSON type name kube-apiserver reports in "must be of type" errors.</summary>
    public static string TypeName(JsonNode? node) => Kind(node) switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => IsInteger(node) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    public static string? GetString(JsonNode? node)
        => node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    public static bool IsTrue(JsonNode? node) => Kind(node) == JsonValueKind.True;

    public static bool IsFalse(JsonNode? node) => Kind(node) == JsonValueKind.False;

    public static long? GetLong(JsonNode? node) => TryGetNumber(node, out var d) ? (long)d : null;

    public static bool DeepEquals(JsonNode? a, JsonNode? b) => JsonNode.DeepEquals(a, b);
}
