using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Vmk.ApiServer.Http;

namespace Vmk.ApiServer.Schema;

/// <summary>
/// Prunes unknown fields, applies defaults and validates a custom resource against its structural schema, in
/// kube-apiserver's order (prune, default, validate) and with its message texts, so a user sees every offending
/// field path at once.
/// </summary>
public sealed class SchemaValidator
{
    private static readonly Dictionary<string, Regex> PatternCache = new(StringComparer.Ordinal);
    private static readonly Lock PatternLock = new();

    private readonly List<FieldError> _errors = [];
    private readonly List<string> _unknown = [];

    private SchemaValidator()
    {
    }

    public IReadOnlyList<FieldError> Errors => _errors;

    /// <summary>Paths of fields the schema does not declare; they have been removed from the object.</summary>
    public IReadOnlyList<string> UnknownFields => _unknown;

    public static SchemaValidator Run(JsonObject obj, SchemaNode root)
    {
        var v = new SchemaValidator();
        v.VisitObject(obj, root, "", isRoot: true);
        return v;
    }

    private void Visit(JsonNode? value, SchemaNode schema, string path, Action<JsonNode?> replace)
    {
        if (value is null)
        {
            if (!schema.Nullable)
            {
                // kube: nulls of non-nullable fields are pruned, then defaulted.
                replace(schema.Default?.DeepClone());
            }
            return;
        }

        if (schema.PreserveUnknownFields && schema.Type is null && schema.Properties.Count == 0)
        {
            return;
        }

        if (!CheckType(value, schema, path))
        {
            return;
        }

        switch (value)
        {
            case JsonObject obj:
                VisitObject(obj, schema, path, isRoot: false);
                break;
            case JsonArray arr:
                VisitArray(arr, schema, path);
                break;
            default:
                ValidateScalar(value, schema, path);
                break;
        }

        if (schema.Enum is { Count: > 0 } allowed && !allowed.Any(a => JsonNode.DeepEquals(a, value)))
        {
            _errors.Add(FieldError.NotSupported(path, value, allowed.Select(FieldError.RenderValue)));
        }
    }

    private bool CheckType(JsonNode value, SchemaNode schema, string path)
    {
        var kind = JsonKinds.Kind(value);
        bool ok;
        string expected = schema.Type ?? "";
        if (schema.IntOrString)
        {
            ok = kind == JsonValueKind.String || JsonKinds.IsInteger(value);
            expected = "integer,string";
        }
        else
        {
            ok = schema.Type switch
            {
                null => true,
                "object" => kind == JsonValueKind.Object,
                "array" => kind == JsonValueKind.Array,
                "string" => kind == JsonValueKind.String,
                "integer" => JsonKinds.IsInteger(value),
                "number" => kind == JsonValueKind.Number,
                "boolean" => kind is JsonValueKind.True or JsonValueKind.False,
                _ => true,
            };
        }
        if (!ok)
        {
            var actual = JsonKinds.TypeName(value);
            _errors.Add(FieldError.Invalid(path, JsonValue.Create(actual), $"{Display(path)} in body must be of type {expected}: \"{actual}\""));
        }
        return ok;
    }

    private void VisitObject(JsonObject obj, SchemaNode schema, string path, bool isRoot)
    {
        // Prune what the schema does not declare.
        if (!schema.PreserveUnknownFields && schema.AdditionalProperties is null && !schema.AdditionalPropertiesAllowed)
        {
            foreach (var key in obj.Select(p => p.Key).ToList())
            {
                if (IsAlwaysKept(key, isRoot || schema.EmbeddedResource))
                {
                    continue;
                }
                if (!schema.Properties.ContainsKey(key))
                {
                    _unknown.Add(Join(path, key));
                    obj.Remove(key);
                }
            }
        }

        // Defaults for absent properties.
        foreach (var (name, child) in schema.Properties)
        {
            if (child.Default is not null && !obj.ContainsKey(name))
            {
                obj[name] = child.Default.DeepClone();
            }
        }

        foreach (var key in obj.Select(p => p.Key).ToList())
        {
            if ((isRoot || schema.EmbeddedResource) && key is "apiVersion" or "kind" or "metadata")
            {
                continue;
            }
            var childPath = Join(path, key);
            if (schema.Properties.TryGetValue(key, out var childSchema))
            {
                Visit(obj[key], childSchema, childPath, v => Replace(obj, key, v));
            }
            else if (schema.AdditionalProperties is { } mapSchema)
            {
                Visit(obj[key], mapSchema, childPath, v => Replace(obj, key, v));
            }
        }

        foreach (var name in schema.Required)
        {
            if (!obj.ContainsKey(name))
            {
                _errors.Add(FieldError.Required(Join(path, name)));
            }
        }

        if (schema.MinProperties is { } minP && obj.Count < minP)
        {
            _errors.Add(FieldError.Invalid(path, JsonValue.Create(obj.Count), $"{Display(path)} in body should have at least {minP} properties"));
        }
        if (schema.MaxProperties is { } maxP && obj.Count > maxP)
        {
            _errors.Add(new FieldError(path, FieldErrorType.Invalid, JsonValue.Create(obj.Count), $"{Display(path)} in body should have at most {maxP} properties"));
        }
    }

    private static void Replace(JsonObject obj, string key, JsonNode? value)
    {
        if (value is null)
        {
            obj.Remove(key);
        }
        else
        {
            obj[key] = value;
        }
    }

    private static bool IsAlwaysKept(string key, bool resourceLevel)
        => resourceLevel && key is "apiVersion" or "kind" or "metadata";

    private void VisitArray(JsonArray arr, SchemaNode schema, string path)
    {
        if (schema.Items is { } itemSchema)
        {
            for (var i = 0; i < arr.Count; i++)
            {
                var index = i;
                Visit(arr[i], itemSchema, $"{path}[{i}]", v => arr[index] = v);
            }
        }

        if (schema.MinItems is { } min && arr.Count < min)
        {
            _errors.Add(FieldError.Invalid(path, JsonValue.Create(arr.Count), $"{Display(path)} in body should have at least {min} items"));
        }
        if (schema.MaxItems is { } max && arr.Count > max)
        {
            _errors.Add(new FieldError(path, FieldErrorType.TooMany, JsonValue.Create(arr.Count), $"must have at most {max} items"));
        }

        if (schema.ListType == "set")
        {
            for (var i = 0; i < arr.Count; i++)
            {
                for (var j = 0; j < i; j++)
                {
                    if (JsonNode.DeepEquals(arr[i], arr[j]))
                    {
                        _errors.Add(new FieldError($"{path}[{i}]", FieldErrorType.Duplicate, arr[i], ""));
                        break;
                    }
                }
            }
        }
        else if (schema.ListType == "map" && schema.ListMapKeys.Count > 0)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < arr.Count; i++)
            {
                if (arr[i] is not JsonObject item)
                {
                    continue;
                }
                var key = string.Join("\u0000", schema.ListMapKeys.Select(k => item[k]?.ToJsonString() ?? "null"));
                if (!seen.Add(key))
                {
                    var keyObj = new JsonObject();
                    foreach (var k in schema.ListMapKeys)
                    {
                        keyObj[k] = item[k]?.DeepClone();
                    }
                    _errors.Add(new FieldError($"{path}[{i}]", FieldErrorType.Duplicate, keyObj, ""));
                }
            }
        }
    }

    private void ValidateScalar(JsonNode value, SchemaNode schema, string path)
    {
        if (JsonKinds.GetString(value) is { } s)
        {
            var length = Encoding.UTF8.GetByteCount(s);
            if (schema.MaxLength is { } maxLen && s.Length > maxLen)
            {
                _errors.Add(FieldError.TooLong(path, (int)maxLen));
            }
            if (schema.MinLength is { } minLen && s.Length < minLen)
            {
                _errors.Add(FieldError.Invalid(path, value, $"{Display(path)} in body should be at least {minLen} chars long"));
            }
            _ = length;
            if (schema.Pattern is { } pattern && !Matches(pattern, s))
            {
                _errors.Add(FieldError.Invalid(path, value, $"{Display(path)} in body should match '{pattern}'"));
            }
            if (schema.Format is { } format && !FormatOk(format, s))
            {
                _errors.Add(FieldError.Invalid(path, value, $"{Display(path)} in body must be of type {format}: {FieldError.RenderValue(value)}"));
            }
            return;
        }

        if (JsonKinds.TryGetNumber(value, out var number))
        {
            if (schema.Minimum is { } min && (schema.ExclusiveMinimum ? number <= min : number < min))
            {
                var op = schema.ExclusiveMinimum ? "greater than" : "greater than or equal to";
                _errors.Add(FieldError.Invalid(path, value, $"{Display(path)} in body should be {op} {Fmt(min)}"));
            }
            if (schema.Maximum is { } max && (schema.ExclusiveMaximum ? number >= max : number > max))
            {
                var op = schema.ExclusiveMaximum ? "less than" : "less than or equal to";
                _errors.Add(FieldError.Invalid(path, value, $"{Display(path)} in body should be {op} {Fmt(max)}"));
            }
        }
    }

    private static bool FormatOk(string format, string s) => format switch
    {
        "date-time" => DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out _),
        "ipv4" => System.Net.IPAddress.TryParse(s, out var a4) && a4.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork,
        "ipv6" => System.Net.IPAddress.TryParse(s, out var a6) && a6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6,
        "cidr" => IsCidr(s),
        "mac" => Regex.IsMatch(s, "^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"),
        "uuid" => Guid.TryParse(s, out _),
        _ => true,
    };

    private static bool IsCidr(string s)
    {
        var slash = s.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && System.Net.IPAddress.TryParse(s[..slash], out var ip)
            && int.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var bits)
            && bits >= 0 && bits <= (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
    }

    private static bool Matches(string pattern, string s)
    {
        Regex? regex;
        lock (PatternLock)
        {
            if (!PatternCache.TryGetValue(pattern, out regex))
            {
                try
                {
                    regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
                }
                catch (ArgumentException)
                {
                    regex = null;
                }
                PatternCache[pattern] = regex!;
            }
        }
        if (regex is null)
        {
            return true;
        }
        try
        {
            return regex.IsMatch(s);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }

    private static string Fmt(double d) => d.ToString(CultureInfo.InvariantCulture);

    private static string Display(string path) => path.Length == 0 ? "body" : path;

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";
}
