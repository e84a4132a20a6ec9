using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Registry;

/// <summary>
/// A Table column: a CRD's additionalPrinterColumn (a JSONPath) or a built-in type's column (a function, as
/// kube-apiserver's internal printers compute them).
/// </summary>
public sealed record PrinterColumn(string Name, string Type, string Format, string Description, int Priority, Func<JsonObject, JsonNode?> Cell)
{
    public static PrinterColumn FromJsonPath(string name, string type, string format, string description, int priority, string jsonPath)
        => new(name, type, format, description, priority, obj =>
        {
            var values = SimpleJsonPath.Evaluate(obj, jsonPath);
            return values.Count > 0 ? values[0]?.DeepClone() : null;
        });
}
