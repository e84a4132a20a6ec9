using System.Text.Json.Nodes;
using Vmk.Operator.Apis.V1Alpha1;

namespace Vmk.Operator.Controllers.Common;

/// <summary>A metav1.LabelSelector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) as JSON, matched against labels.</summary>
public static class LabelSelector
{
    /// <summary>True when <paramref name="selector"/> (null or empty: everything) selects <paramref name="labels"/>.</summary>
    public static bool Matches(JsonNode? selector, IDictionary<string, string>? labels)
    {
        labels ??= new Dictionary<string, string>();
        if (selector is not JsonObject s)
        {
            return true;
        }
        if (s["matchLabels"] is JsonObject match)
        {
            foreach (var (key, value) in match)
            {
                if (!labels.TryGetValue(key, out var v) || v != value?.ToString())
                {
                    return false;
                }
            }
        }
        foreach (var e in CustomObject.Array(s, "matchExpressions").OfType<JsonObject>())
        {
            var key = CustomObject.Str(e, "key") ?? "";
            var values = CustomObject.Array(e, "values").Select(v => v?.ToString()).ToHashSet();
            var has = labels.TryGetValue(key, out var actual);
            var ok = CustomObject.Str(e, "operator") switch
            {
                "In" => has && values.Contains(actual),
                "NotIn" => !has || !values.Contains(actual),
                "Exists" => has,
                "DoesNotExist" => !has,
                _ => false,
            };
            if (!ok)
            {
                return false;
            }
        }
        return true;
    }
}
