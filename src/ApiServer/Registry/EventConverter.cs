using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Registry;

/// <summary>
/// events.k8s.io/v1 Event &lt;-&gt; core/v1 Event (the stored form), field for field as kube-apiserver converts them,
/// so an Event written by a controller through events.k8s.io shows in <c>kubectl describe</c>.
/// </summary>
public sealed class EventConverter : IObjectConverter
{
    private static readonly (string Served, string Stored)[] Renames =
    [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("reportingController", "reportingComponent"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    ];

    public JsonObject ToStorage(JsonObject served)
    {
        var stored = (JsonObject)served.DeepClone();
        foreach (var (from, to) in Renames)
        {
            Move(stored, from, to);
        }
        stored["apiVersion"] = "v1";
        return stored;
    }

    public JsonObject FromStorage(JsonObject stored)
    {
        var served = (JsonObject)stored.DeepClone();
        foreach (var (to, from) in Renames)
        {
            Move(served, from, to);
        }
        served["apiVersion"] = "events.k8s.io/v1";
        return served;
    }

    public string MapFieldLabel(string label)
    {
        foreach (var (served, stored) in Renames)
        {
            if (label == served || label.StartsWith(served + ".", StringComparison.Ordinal))
            {
                return stored + label[served.Length..];
            }
        }
        return label;
    }

    private static void Move(JsonObject o, string from, string to)
    {
        if (o.TryGetPropertyValue(from, out var value))
        {
            o.Remove(from);
            o[to] = value;
        }
    }
}
