using System.Globalization;
using System.Text.Json.Nodes;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Storage;

namespace Vmk.ApiServer.Http;

/// <summary>meta.k8s.io/v1 Table output for <c>kubectl get</c>, from a resource's printer columns.</summary>
public static class TableBuilder
{
    public static JsonObject Build(ResourceDefinition def, IEnumerable<(JsonObject Stored, JsonObject Served)> objects, long resourceVersion,
        string? continueToken, long? remaining, string includeObject)
    {
        var columns = new JsonArray();
        foreach (var c in def.Columns)
        {
            columns.Add(new JsonObject
            {
                ["name"] = c.Name,
                ["type"] = c.Type,
                ["format"] = c.Format,
                ["description"] = c.Description,
                ["priority"] = c.Priority,
            });
        }
        var rows = new JsonArray();
        foreach (var (stored, served) in objects)
        {
            rows.Add(Row(def, stored, served, includeObject));
        }
        var meta = new JsonObject { ["resourceVersion"] = resourceVersion.ToString(CultureInfo.InvariantCulture) };
        if (continueToken is not null)
        {
            meta["continue"] = continueToken;
        }
        if (remaining is not null)
        {
            meta["remainingItemCount"] = remaining;
        }
        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = meta,
            ["columnDefinitions"] = columns,
            ["rows"] = rows,
        };
    }

    private static JsonObject Row(ResourceDefinition def, JsonObject stored, JsonObject served, string includeObject)
    {
        var cells = new JsonArray();
        foreach (var c in def.Columns)
        {
            JsonNode? cell;
            try
            {
                cell = c.Cell(stored);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                cell = null;
            }
            if (c.Type == "date" && cell is JsonValue v && v.TryGetValue<string>(out var text))
            {
                cell = DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
                    ? JsonValue.Create(HumanDuration(DateTimeOffset.UtcNow - t))
                    : cell;
            }
            cells.Add(cell);
        }
        var row = new JsonObject { ["cells"] = cells };
        switch (includeObject)
        {
            case "None":
                break;
            case "Object":
                row["object"] = served.DeepClone();
                break;
            default:
                row["object"] = new JsonObject
                {
                    ["kind"] = "PartialObjectMetadata",
                    ["apiVersion"] = "meta.k8s.io/v1",
                    ["metadata"] = served["metadata"]?.DeepClone(),
                };
                break;
        }
        return row;
    }

    /// <summary>Age as kubectl shows it (k8s.io/apimachinery/pkg/util/duration.HumanDuration).</summary>
    public static string HumanDuration(TimeSpan d)
    {
        var seconds = (long)d.TotalSeconds;
        if (seconds < -1)
        {
            return "<invalid>";
        }
        if (seconds < 0)
        {
            return "0s";
        }
        if (seconds < 60 * 2)
        {
            return $"{seconds}s";
        }
        var minutes = seconds / 60;
        if (minutes < 10)
        {
            var s = seconds % 60;
            return s == 0 ? $"{minutes}m" : $"{minutes}m{s}s";
        }
        if (minutes < 60 * 3)
        {
            return $"{minutes}m";
        }
        var hours = minutes / 60;
        if (hours < 8)
        {
            var m = minutes % 60;
            return m == 0 ? $"{hours}h" : $"{hours}h{m}m";
        }
        if (hours < 48)
        {
            return $"{hours}h";
        }
        if (hours < 24 * 8)
        {
            var h = hours % 24;
            return h == 0 ? $"{hours / 24}d" : $"{hours / 24}d{h}h";
        }
        if (hours < 24 * 365 * 2)
        {
            return $"{hours / 24}d";
        }
        if (hours < 24 * 365 * 8)
        {
            var dy = hours / 24 % 365;
            return dy == 0 ? $"{hours / 24 / 365}y" : $"{hours / 24 / 365}y{dy}d";
        }
        return $"{hours / 24 / 365}y";
    }
}
