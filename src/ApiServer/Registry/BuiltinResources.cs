using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Schema;

namespace Vmk.ApiServer.Registry;

/// <summary>The built-in types this project uses: Namespace, ConfigMap, Secret, Event (two APIs), Lease, and CRDs.</summary>
public static class BuiltinResources
{
    public static IEnumerable<ResourceDefinition> All()
    {
        yield return new ResourceDefinition
        {
            Group = "", Version = "v1", Kind = "Namespace", Plural = "namespaces", Singular = "namespace",
            ShortNames = ["ns"], StatusSubresource = true,
            Columns = [CrdDefinitions.NameColumn(), Col("Status", "string", "The status of the namespace", o => o["status"]?["phase"]?.DeepClone()), CrdDefinitions.AgeColumn()],
            SelectableFields = ["status.phase"],
            ValidateBuiltin = ValidateNamespace,
            OpenApiSchema = BuiltinSchemas.Namespace(),
            Verbs = ["create", "delete", "get", "list", "patch", "update", "watch"],
        };
        yield return new ResourceDefinition
        {
            Group = "", Version = "v1", Kind = "ConfigMap", Plural = "configmaps", Singular = "configmap",
            Namespaced = true, ShortNames = ["cm"],
            Columns = [CrdDefinitions.NameColumn(), Col("Data", "string", "Number of data entries", o => JsonValue.Create(Count(o["data"]) + Count(o["binaryData"]))), CrdDefinitions.AgeColumn()],
            ValidateBuiltin = ValidateConfigMap,
            OpenApiSchema = BuiltinSchemas.ConfigMap(),
        };
        yield return new ResourceDefinition
        {
            Group = "", Version = "v1", Kind = "Secret", Plural = "secrets", Singular = "secret",
            Namespaced = true,
            Columns = [CrdDefinitions.NameColumn(), Col("Type", "string", "The type of the secret", o => o["type"]?.DeepClone()),
                Col("Data", "string", "Number of data entries", o => JsonValue.Create(Count(o["data"]))), CrdDefinitions.AgeColumn()],
            SelectableFields = ["type"],
            ValidateBuiltin = ValidateSecret,
            OpenApiSchema = BuiltinSchemas.Secret(),
        };
        yield return new ResourceDefinition
        {
            Group = "", Version = "v1", Kind = "Event", Plural = "events", Singular = "event",
            Namespaced = true, ShortNames = ["ev"],
            Columns = EventColumns(),
            StorageResourceOverride = "/events",
            SelectableFields = EventFields,
            ValidateBuiltin = ValidateEvent,
            OpenApiSchema = BuiltinSchemas.Event(),
        };
        yield return new ResourceDefinition
        {
            Group = "events.k8s.io", Version = "v1", Kind = "Event", Plural = "events", Singular = "event",
            Namespaced = true, ShortNames = ["ev"],
            Columns = EventColumns(),
            StorageResourceOverride = "/events",
            Converter = new EventConverter(),
            SelectableFields = EventFields,
            ValidateBuiltin = ValidateEvent,
            OpenApiSchema = BuiltinSchemas.EventV1(),
        };
        yield return new ResourceDefinition
        {
            Group = "coordination.k8s.io", Version = "v1", Kind = "Lease", Plural = "leases", Singular = "lease",
            Namespaced = true,
            Columns = [CrdDefinitions.NameColumn(), Col("Holder", "string", "The holder of the lease", o => o["spec"]?["holderIdentity"]?.DeepClone()), CrdDefinitions.AgeColumn()],
            ValidateBuiltin = ValidateLease,
            OpenApiSchema = BuiltinSchemas.Lease(),
        };
        yield return new ResourceDefinition
        {
            Group = "apiextensions.k8s.io", Version = "v1", Kind = "CustomResourceDefinition", Plural = "customresourcedefinitions",
            Singular = "customresourcedefinition", ShortNames = ["crd", "crds"], Categories = ["api-extensions"],
            StatusSubresource = true, HasGeneration = true,
            Columns = [CrdDefinitions.NameColumn(), Col("Created At", "date", "", o => o["metadata"]?["creationTimestamp"]?.DeepClone(), rawDate: true)],
            ValidateBuiltin = CrdDefinitions.ValidateAndSetStatus,
            OpenApiSchema = BuiltinSchemas.CustomResourceDefinition(),
        };
    }

    private static readonly string[] EventFields =
    [
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    ];

    private static List<PrinterColumn> EventColumns() =>
    [
        Col("Last Seen", "date", "", o => o["lastTimestamp"]?.DeepClone() ?? o["eventTime"]?.DeepClone() ?? o["metadata"]?["creationTimestamp"]?.DeepClone()),
        Col("Type", "string", "", o => o["type"]?.DeepClone()),
        Col("Reason", "string", "", o => o["reason"]?.DeepClone()),
        Col("Object", "string", "", o => JsonValue.Create($"{(JsonKinds.GetString(o["involvedObject"]?["kind"]) ?? "").ToLowerInvariant()}/{JsonKinds.GetString(o["involvedObject"]?["name"])}")),
        Col("Message", "string", "", o => o["message"]?.DeepClone()),
    ];

    private static PrinterColumn Col(string name, string type, string description, Func<JsonObject, JsonNode?> cell, bool rawDate = false)
        => new(name, rawDate ? "string" : type, "", description, 0, cell);

    private static int Count(JsonNode? n) => n is JsonObject o ? o.Count : 0;

    private static List<FieldError> ValidateNamespace(JsonObject ns, JsonObject? old)
    {
        var errors = new List<FieldError>();
        var name = JsonKinds.GetString(ns["metadata"]?["name"]) ?? "";
        if (!CrdDefinitions.DnsLabel().IsMatch(name) || name.Length > 63)
        {
            errors.Add(FieldError.Invalid("metadata.name", JsonValue.Create(name), "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
        if (ns["spec"] is not JsonObject spec)
        {
            spec = new JsonObject();
            ns["spec"] = spec;
        }
        if (old is null && spec["finalizers"] is null)
        {
            spec["finalizers"] = new JsonArray("kubernetes");
        }
        if (ns["status"] is not JsonObject status)
        {
            status = new JsonObject();
            ns["status"] = status;
        }
        status["phase"] = ns["metadata"]?["deletionTimestamp"] is null ? "Active" : "Terminating";
        return errors;
    }

    private static List<FieldError> ValidateConfigMap(JsonObject cm, JsonObject? old)
    {
        var errors = new List<FieldError>();
        foreach (var field in new[] { "data", "binaryData" })
        {
            if (cm[field] is null)
            {
                continue;
            }
            if (cm[field] is not JsonObject map)
            {
                errors.Add(FieldError.Invalid(field, cm[field], "must be a map of strings"));
                continue;
            }
            foreach (var (key, value) in map)
            {
                if (!ValidDataKey(key))
                {
                    errors.Add(FieldError.Invalid($"{field}[{key}]", JsonValue.Create(key), "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
                }
                if (JsonKinds.GetString(value) is null)
                {
                    errors.Add(FieldError.Invalid($"{field}[{key}]", value, "must be a string"));
                }
                else if (field == "binaryData" && !IsBase64(value!.GetValue<string>()))
                {
                    errors.Add(FieldError.Invalid($"{field}[{key}]", JsonValue.Create("<binary>"), "must be base64-encoded"));
                }
            }
        }
        if (old is not null && JsonKinds.IsTrue(old["immutable"])
            && (!JsonNode.DeepEquals(old["data"], cm["data"]) || !JsonNode.DeepEquals(old["binaryData"], cm["binaryData"])))
        {
            errors.Add(FieldError.Forbidden("data", "field is immutable when `immutable` is set"));
        }
        return errors;
    }

    private static List<FieldError> ValidateSecret(JsonObject secret, JsonObject? old)
    {
        var errors = new List<FieldError>();
        secret["type"] ??= "Opaque";
        if (secret["data"] is not null and not JsonObject)
        {
            errors.Add(FieldError.Invalid("data", secret["data"], "must be a map of base64 strings"));
            return errors;
        }
        var data = secret["data"] as JsonObject ?? new JsonObject();
        foreach (var (key, value) in data)
        {
            if (!ValidDataKey(key))
            {
                errors.Add(FieldError.Invalid($"data[{key}]", JsonValue.Create(key), "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"));
            }
            if (JsonKinds.GetString(value) is not { } s || !IsBase64(s))
            {
                errors.Add(FieldError.Invalid($"data[{key}]", JsonValue.Create("<secret contents redacted>"), "must be base64-encoded"));
            }
        }
        // stringData is write-only: merged into data and not stored, as kube-apiserver does.
        if (secret["stringData"] is JsonObject stringData)
        {
            foreach (var (key, value) in stringData)
            {
                data[key] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(JsonKinds.GetString(value) ?? value?.ToJsonString() ?? ""));
            }
            secret.Remove("stringData");
        }
        if (data.Count > 0)
        {
            secret["data"] = data;
        }
        if (old is not null && JsonKinds.GetString(old["type"]) != JsonKinds.GetString(secret["type"]))
        {
            errors.Add(FieldError.Invalid("type", secret["type"], "field is immutable"));
        }
        return errors;
    }

    private static List<FieldError> ValidateEvent(JsonObject ev, JsonObject? old)
    {
        var errors = new List<FieldError>();
        if (ev["involvedObject"] is not JsonObject involved)
        {
            errors.Add(FieldError.Required("involvedObject"));
            return errors;
        }
        var ns = JsonKinds.GetString(ev["metadata"]?["namespace"]) ?? "";
        var involvedNs = JsonKinds.GetString(involved["namespace"]);
        if (involvedNs is not null && involvedNs.Length > 0 && involvedNs != ns)
        {
            errors.Add(FieldError.Invalid("involvedObject.namespace", involved["namespace"], "does not match event.namespace"));
        }
        return errors;
    }

    private static List<FieldError> ValidateLease(JsonObject lease, JsonObject? old)
    {
        var errors = new List<FieldError>();
        if (lease["spec"]?["leaseDurationSeconds"] is { } d && (!JsonKinds.IsInteger(d) || (JsonKinds.TryGetNumber(d, out var s) && s <= 0)))
        {
            errors.Add(FieldError.Invalid("spec.leaseDurationSeconds", d, "must be greater than 0"));
        }
        return errors;
    }

    private static bool ValidDataKey(string key)
        => key.Length is > 0 and <= 253 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && key is not "." and not "..";

    private static bool IsBase64(string s)
    {
        var buffer = new byte[(s.Length * 3 / 4) + 3];
        return Convert.TryFromBase64String(s, buffer, out _);
    }
}
