using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Schema;

namespace Vmk.ApiServer.Registry;

/// <summary>Turns an apiextensions.k8s.io/v1 CustomResourceDefinition into served resources, checking it first.</summary>
public static partial class CrdDefinitions
{
    public static List<FieldError> Validate(JsonObject crd)
    {
        var errors = new List<FieldError>();
        var spec = crd["spec"] as JsonObject;
        if (spec is null)
        {
            errors.Add(FieldError.Required("spec"));
            return errors;
        }
        var group = JsonKinds.GetString(spec["group"]);
        var plural = JsonKinds.GetString(spec["names"]?["plural"]);
        var kind = JsonKinds.GetString(spec["names"]?["kind"]);
        var name = JsonKinds.GetString(crd["metadata"]?["name"]);
        if (string.IsNullOrEmpty(group))
        {
            errors.Add(FieldError.Required("spec.group"));
        }
        else if (!group.Contains('.', StringComparison.Ordinal) || !DnsSubdomain().IsMatch(group))
        {
            errors.Add(FieldError.Invalid("spec.group", spec["group"], "should be a domain with at least one dot"));
        }
        if (string.IsNullOrEmpty(plural))
        {
            errors.Add(FieldError.Required("spec.names.plural"));
        }
        else if (!DnsLabel().IsMatch(plural))
        {
            errors.Add(FieldError.Invalid("spec.names.plural", spec["names"]!["plural"], "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"));
        }
        if (string.IsNullOrEmpty(kind))
        {
            errors.Add(FieldError.Required("spec.names.kind"));
        }
        if (!string.IsNullOrEmpty(group) && !string.IsNullOrEmpty(plural) && name != $"{plural}.{group}")
        {
            errors.Add(FieldError.Invalid("metadata.name", crd["metadata"]?["name"], $"must be spec.names.plural+\".\"+spec.group"));
        }
        var scope = JsonKinds.GetString(spec["scope"]);
        if (scope is not ("Namespaced" or "Cluster"))
        {
            errors.Add(FieldError.NotSupported("spec.scope", spec["scope"], ["\"Cluster\"", "\"Namespaced\""]));
        }
        if (spec["versions"] is not JsonArray versions || versions.Count == 0)
        {
            errors.Add(FieldError.Required("spec.versions", "must have exactly one version marked as storage version"));
            return errors;
        }
        var storageCount = 0;
        for (var i = 0; i < versions.Count; i++)
        {
            var v = versions[i] as JsonObject;
            var path = $"spec.versions[{i}]";
            if (string.IsNullOrEmpty(JsonKinds.GetString(v?["name"])))
            {
                errors.Add(FieldError.Required(path + ".name"));
            }
            if (JsonKinds.IsTrue(v?["storage"]))
            {
                storageCount++;
            }
            if (v?["schema"]?["openAPIV3Schema"] is not JsonObject schema)
            {
                errors.Add(FieldError.Required(path + ".schema.openAPIV3Schema", "schemas are required"));
            }
            else if (JsonKinds.GetString(schema["type"]) != "object")
            {
                errors.Add(FieldError.Invalid(path + ".schema.openAPIV3Schema.type", schema["type"], "must be object at the root"));
            }
            if (v?["additionalPrinterColumns"] is JsonArray cols)
            {
                for (var c = 0; c < cols.Count; c++)
                {
                    var jp = JsonKinds.GetString(cols[c]?["jsonPath"]);
                    if (jp is null || !SimpleJsonPath.IsSupported(jp))
                    {
                        errors.Add(FieldError.Invalid($"{path}.additionalPrinterColumns[{c}].jsonPath", cols[c]?["jsonPath"], "must be a simple JSONPath (.a.b, [n], [*], [?(@.k==\"v\")])"));
                    }
                }
            }
        }
        if (storageCount != 1)
        {
            errors.Add(FieldError.Invalid("spec.versions", JsonValue.Create(storageCount), "must have exactly one version marked as storage version"));
        }
        return errors;
    }

    public const string CleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io";

    /// <summary>Admission of a CRD write: validation, the cleanup finalizer, and the status kube-apiserver's CRD
    /// controllers would set (names accepted, established, stored versions).</summary>
    public static List<FieldError> ValidateAndSetStatus(JsonObject crd, JsonObject? old)
    {
        var errors = Validate(crd);
        if (errors.Count > 0)
        {
            return errors;
        }
        var meta = (JsonObject)crd["metadata"]!;
        if (old is null)
        {
            var finalizers = meta["finalizers"] as JsonArray ?? new JsonArray();
            if (!finalizers.Any(f => JsonKinds.GetString(f) == CleanupFinalizer))
            {
                finalizers.Add(CleanupFinalizer);
            }
            meta["finalizers"] = finalizers;
        }
        var spec = (JsonObject)crd["spec"]!;
        var storage = ((JsonArray)spec["versions"]!).OfType<JsonObject>().First(v => JsonKinds.IsTrue(v["storage"]))["name"]!.GetValue<string>();
        var stored = old?["status"]?["storedVersions"] as JsonArray;
        var storedVersions = stored?.Select(v => JsonKinds.GetString(v)).OfType<string>().ToList() ?? [];
        if (!storedVersions.Contains(storage))
        {
            storedVersions.Add(storage);
        }
        var now = old?["status"]?["conditions"]?[0]?["lastTransitionTime"]?.DeepClone() ?? JsonValue.Create(DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
        crd["status"] = new JsonObject
        {
            ["acceptedNames"] = spec["names"]!.DeepClone(),
            ["conditions"] = new JsonArray(
                new JsonObject { ["type"] = "NamesAccepted", ["status"] = "True", ["reason"] = "NoConflicts", ["message"] = "no conflicts found", ["lastTransitionTime"] = now.DeepClone() },
                new JsonObject { ["type"] = "Established", ["status"] = "True", ["reason"] = "InitialNamesAccepted", ["message"] = "the initial names have been accepted", ["lastTransitionTime"] = now.DeepClone() }),
            ["storedVersions"] = new JsonArray(storedVersions.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
        };
        return errors;
    }

    /// <summary>Served resources of a valid CRD (call <see cref="Validate"/> first).</summary>
    public static List<ResourceDefinition> ToDefinitions(JsonObject crd)
    {
        var spec = (JsonObject)crd["spec"]!;
        var names = (JsonObject)spec["names"]!;
        var group = spec["group"]!.GetValue<string>();
        var plural = names["plural"]!.GetValue<string>();
        var kind = names["kind"]!.GetValue<string>();
        var singular = JsonKinds.GetString(names["singular"]) ?? kind.ToLowerInvariant();
        var shortNames = (names["shortNames"] as JsonArray)?.Select(JsonKinds.GetString).OfType<string>().ToList() ?? [];
        var categories = (names["categories"] as JsonArray)?.Select(JsonKinds.GetString).OfType<string>().ToList() ?? [];
        var crdName = crd["metadata"]!["name"]!.GetValue<string>();
        var result = new List<ResourceDefinition>();
        foreach (var v in ((JsonArray)spec["versions"]!).OfType<JsonObject>())
        {
            if (JsonKinds.IsFalse(v["served"]))
            {
                continue;
            }
            var schemaJson = (JsonObject)v["schema"]!["openAPIV3Schema"]!.DeepClone();
            result.Add(new ResourceDefinition
            {
                Group = group,
                Version = v["name"]!.GetValue<string>(),
                Kind = kind,
                Plural = plural,
                Singular = singular,
                Namespaced = spec["scope"]!.GetValue<string>() == "Namespaced",
                ShortNames = shortNames,
                Categories = categories,
                StatusSubresource = v["subresources"]?["status"] is JsonObject,
                Schema = SchemaNode.Parse(schemaJson),
                OpenApiSchema = schemaJson,
                Columns = Columns(v),
                IsCustom = true,
                HasGeneration = true,
                AllowUnconditionalUpdate = false,
                CrdName = crdName,
            });
        }
        return result;
    }

    private static List<PrinterColumn> Columns(JsonObject version)
    {
        var columns = new List<PrinterColumn> { NameColumn() };
        if (version["additionalPrinterColumns"] is JsonArray cols && cols.Count > 0)
        {
            foreach (var c in cols.OfType<JsonObject>())
            {
                columns.Add(PrinterColumn.FromJsonPath(
                    JsonKinds.GetString(c["name"]) ?? "",
                    JsonKinds.GetString(c["type"]) ?? "string",
                    JsonKinds.GetString(c["format"]) ?? "",
                    JsonKinds.GetString(c["description"]) ?? "",
                    (int)(JsonKinds.GetLong(c["priority"]) ?? 0),
                    c["jsonPath"]!.GetValue<string>()));
            }
        }
        else
        {
            columns.Add(AgeColumn());
        }
        return columns;
    }

    public static PrinterColumn NameColumn()
        => new("Name", "string", "name", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
            0, o => o["metadata"]?["name"]?.DeepClone());

    public static PrinterColumn AgeColumn()
        => new("Age", "date", "", "CreationTimestamp is a timestamp representing the server time when this object was created.",
            0, o => o["metadata"]?["creationTimestamp"]?.DeepClone());

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    internal static partial Regex DnsSubdomain();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    internal static partial Regex DnsLabel();
}
