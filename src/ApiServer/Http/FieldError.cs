using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Http;

/// <summary>One offending field, rendered like k8s.io/apimachinery's field.Error ("spec.x: Invalid value: 3: why").</summary>
public sealed record FieldError(string Path, FieldErrorType Type, JsonNode? Value, string Why, bool HasValue = true)
{
    public static FieldError Required(string path, string why = "") => new(path, FieldErrorType.Required, null, why, false);

    public static FieldError Invalid(string path, JsonNode? value, string why) => new(path, FieldErrorType.Invalid, value, why);

    public static FieldError Forbidden(string path, string why) => new(path, FieldErrorType.Forbidden, null, why, false);

    public static FieldError TooLong(string path, int max) => new(path, FieldErrorType.TooLong, null, $"may not be more than {max} bytes", false);

    public static FieldError NotSupported(string path, JsonNode? value, IEnumerable<string> allowed)
        => new(path, FieldErrorType.NotSupported, value, "supported values: " + string.Join(", ", allowed));

    public string CauseReason => Type switch
    {
        FieldErrorType.Required => "FieldValueRequired",
        FieldErrorType.Forbidden => "FieldValueForbidden",
        FieldErrorType.TooLong => "FieldValueTooLong",
        FieldErrorType.NotSupported => "FieldValueNotSupported",
        FieldErrorType.Duplicate => "FieldValueDuplicate",
        FieldErrorType.TooMany => "FieldValueTooMany",
        _ => "FieldValueInvalid",
    };

    private string TypeText => Type switch
    {
        FieldErrorType.Required => "Required value",
        FieldErrorType.Forbidden => "Forbidden",
        FieldErrorType.TooLong => "Too long",
        FieldErrorType.NotSupported => "Unsupported value",
        FieldErrorType.Duplicate => "Duplicate value",
        FieldErrorType.TooMany => "Too many",
        _ => "Invalid value",
    };

    /// <summary>The text after the path, as in a Status cause's message.</summary>
    public string Detail()
    {
        var text = TypeText;
        if (HasValue)
        {
            text += ": " + RenderValue(Value);
        }
        if (!string.IsNullOrEmpty(Why))
        {
            text += ": " + Why;
        }
        return text;
    }

    public override string ToString() => $"{Path}: {Detail()}";

    /// <summary>Strings quoted like Go's %q, numbers and booleans bare, objects as JSON.</summary>
    public static string RenderValue(JsonNode? value)
    {
        if (value is null)
        {
            return "null";
        }
        if (value is JsonValue v)
        {
            if (v.GetValueKind() == JsonValueKind.String)
            {
                return JsonSerializer.Serialize(v.GetValue<string>());
            }
            return v.ToJsonString();
        }
        var json = value.ToJsonString();
        return json.Length > 200 ? string.Create(CultureInfo.InvariantCulture, $"{json[..200]}...") : json;
    }
}
