using System.Text.Json;
using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Registry;

namespace Vmk.ApiServer.OpenApi;

/// <summary>
/// OpenAPI v3: <c>/openapi/v3</c> lists one document per group/version, each with the resources' schemas
/// (x-kubernetes-group-version-kind, for <c>kubectl explain</c>) and paths whose operations declare the
/// <c>fieldValidation</c> parameter (kubectl checks that before it relies on server-side field validation).
/// Documents are rebuilt when the set of resources changes and addressed by content hash, as kube-apiserver does.
/// </summary>
public sealed class OpenApiDocuments
{
    private const string MetaPrefix = "io.k8s.apimachinery.pkg.apis.meta.v1.";

    private readonly ResourceRegistry _registry;
    private readonly Lock _lock = new();
    private long _builtFor = -1;
    private Dictionary<string, (string Json, string Hash)> _documents = new(StringComparer.Ordinal);

    public OpenApiDocuments(ResourceRegistry registry)
    {
        _registry = registry;
    }

    public JsonObject Index()
    {
        var docs = Documents();
        var paths = new JsonObject();
        foreach (var (key, (_, hash)) in docs.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            paths[key] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{key}?hash={hash}" };
        }
        return new JsonObject { ["paths"] = paths };
    }

    /// <summary>The document for "api/v1" or "apis/{group}/{version}", or null.</summary>
    public string? Document(string key) => Documents().TryGetValue(key, out var d) ? d.Json : null;

    private Dictionary<string, (string Json, string Hash)> Documents()
    {
        lock (_lock)
        {
            if (_builtFor == _registry.Generation)
            {
                return _documents;
            }
            var generation = _registry.Generation;
            var result = new Dictionary<string, (string, string)>(StringComparer.Ordinal);
            foreach (var gv in _registry.Snapshot().GroupBy(d => d.GroupVersion))
            {
                var key = gv.First().Group.Length == 0 ? $"api/{gv.First().Version}" : $"apis/{gv.Key}";
                var json = Build(gv.ToList()).ToJsonString(JsonWire.Options);
                result[key] = (json, DiscoveryDocuments.Hash(json).ToUpperInvariant()[..32]);
            }
            _documents = result;
            _builtFor = generation;
            return result;
        }
    }

    public static string SchemaName(ResourceDefinition def, string kind)
    {
        var prefix = def.Group switch
        {
            "" => "io.k8s.api.core",
            "apiextensions.k8s.io" => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
            _ when def.Group.EndsWith(".k8s.io", StringComparison.Ordinal) => "io.k8s.api." + def.Group[..^".k8s.io".Length],
            _ => string.Join('.', def.Group.Split('.').Reverse()),
        };
        return $"{prefix}.{def.Version}.{kind}";
    }

    private static JsonObject Build(List<ResourceDefinition> defs)
    {
        var schemas = new JsonObject
        {
            [MetaPrefix + "ObjectMeta"] = BuiltinSchemas.ObjectMeta(),
            [MetaPrefix + "ListMeta"] = ListMeta(),
            [MetaPrefix + "Status"] = StatusSchema(),
            [MetaPrefix + "Patch"] = new JsonObject { ["type"] = "object", ["description"] = "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body." },
            [MetaPrefix + "DeleteOptions"] = new JsonObject { ["type"] = "object", ["description"] = "DeleteOptions may be provided when deleting an API object.", ["x-kubernetes-preserve-unknown-fields"] = true },
        };
        var paths = new JsonObject();
        foreach (var def in defs)
        {
            var name = SchemaName(def, def.Kind);
            schemas[name] = KindSchema(def);
            schemas[SchemaName(def, def.ListKind)] = ListSchema(def, name);
            AddPaths(paths, def, name);
        }
        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.32.0" },
            ["paths"] = paths,
            ["components"] = new JsonObject { ["schemas"] = schemas },
        };
    }

    private static JsonObject Gvk(ResourceDefinition def, string kind)
        => new() { ["group"] = def.Group, ["kind"] = kind, ["version"] = def.Version };

    private static JsonObject Ref(string name, string description) => new()
    {
        ["description"] = description,
        ["default"] = new JsonObject(),
        ["allOf"] = new JsonArray(new JsonObject { ["$ref"] = "#/components/schemas/" + name }),
    };

    private static JsonObject KindSchema(ResourceDefinition def)
    {
        var schema = (JsonObject)(def.OpenApiSchema?.DeepClone() ?? new JsonObject { ["type"] = "object" });
        if (schema["properties"] is not JsonObject props)
        {
            props = new JsonObject();
            schema["properties"] = props;
        }
        var ordered = new JsonObject
        {
            ["apiVersion"] = new JsonObject
            {
                ["type"] = "string",
                ["description"] = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.",
            },
            ["kind"] = new JsonObject
            {
                ["type"] = "string",
                ["description"] = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.",
            },
            ["metadata"] = Ref(MetaPrefix + "ObjectMeta", "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
        };
        foreach (var (key, value) in props.ToList())
        {
            if (key is "apiVersion" or "kind" or "metadata")
            {
                continue;
            }
            props.Remove(key);
            ordered[key] = value;
        }
        schema["properties"] = ordered;
        schema["x-kubernetes-group-version-kind"] = new JsonArray(Gvk(def, def.Kind));
        return schema;
    }

    private static JsonObject ListSchema(ResourceDefinition def, string itemName) => new()
    {
        ["type"] = "object",
        ["description"] = $"{def.ListKind} is a list of {def.Kind}",
        ["required"] = new JsonArray("items"),
        ["properties"] = new JsonObject
        {
            ["apiVersion"] = new JsonObject { ["type"] = "string", ["description"] = "APIVersion defines the versioned schema of this representation of an object." },
            ["items"] = new JsonObject
            {
                ["type"] = "array",
                ["description"] = $"List of {def.Plural}.",
                ["items"] = Ref(itemName, ""),
            },
            ["kind"] = new JsonObject { ["type"] = "string", ["description"] = "Kind is a string value representing the REST resource this object represents." },
            ["metadata"] = Ref(MetaPrefix + "ListMeta", "Standard list metadata."),
        },
        ["x-kubernetes-group-version-kind"] = new JsonArray(Gvk(def, def.ListKind)),
    };

    private static JsonObject ListMeta() => new()
    {
        ["type"] = "object",
        ["description"] = "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
        ["properties"] = new JsonObject
        {
            ["continue"] = new JsonObject { ["type"] = "string", ["description"] = "continue may be set if the user set a limit on the number of items returned." },
            ["remainingItemCount"] = new JsonObject { ["type"] = "integer", ["format"] = "int64", ["description"] = "The number of subsequent items in the list which are not included in this list response." },
            ["resourceVersion"] = new JsonObject { ["type"] = "string", ["description"] = "String that identifies the server's internal version of this object." },
        },
    };

    private static JsonObject StatusSchema() => new()
    {
        ["type"] = "object",
        ["description"] = "Status is a return value for calls that don't return other objects.",
        ["properties"] = new JsonObject
        {
            ["code"] = new JsonObject { ["type"] = "integer", ["format"] = "int32" },
            ["message"] = new JsonObject { ["type"] = "string" },
            ["reason"] = new JsonObject { ["type"] = "string" },
            ["status"] = new JsonObject { ["type"] = "string" },
        },
        ["x-kubernetes-group-version-kind"] = new JsonArray(new JsonObject { ["group"] = "", ["kind"] = "Status", ["version"] = "v1" }),
    };

    private static void AddPaths(JsonObject paths, ResourceDefinition def, string schemaName)
    {
        var root = def.Group.Length == 0 ? $"/api/{def.Version}" : $"/apis/{def.Group}/{def.Version}";
        var collection = def.Namespaced ? $"{root}/namespaces/{{namespace}}/{def.Plural}" : $"{root}/{def.Plural}";
        var item = collection + "/{name}";
        var listName = SchemaName(def, def.ListKind);
        paths[collection] = new JsonObject
        {
            ["get"] = Operation(def, "list", listName, ["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch", "allowWatchBookmarks", "timeoutSeconds"]),
            ["post"] = Operation(def, "post", schemaName, ["dryRun", "fieldManager", "fieldValidation"]),
            ["delete"] = Operation(def, "deletecollection", MetaPrefix + "Status", ["labelSelector", "fieldSelector", "dryRun", "propagationPolicy"]),
            ["parameters"] = PathParameters(def, false),
        };
        paths[item] = new JsonObject
        {
            ["get"] = Operation(def, "get", schemaName, []),
            ["put"] = Operation(def, "put", schemaName, ["dryRun", "fieldManager", "fieldValidation"]),
            ["patch"] = Operation(def, "patch", schemaName, ["dryRun", "fieldManager", "fieldValidation", "force"]),
            ["delete"] = Operation(def, "delete", schemaName, ["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            ["parameters"] = PathParameters(def, true),
        };
        if (def.StatusSubresource)
        {
            paths[item + "/status"] = new JsonObject
            {
                ["get"] = Operation(def, "get", schemaName, []),
                ["put"] = Operation(def, "put", schemaName, ["dryRun", "fieldManager", "fieldValidation"]),
                ["patch"] = Operation(def, "patch", schemaName, ["dryRun", "fieldManager", "fieldValidation", "force"]),
                ["parameters"] = PathParameters(def, true),
            };
        }
    }

    private static JsonArray PathParameters(ResourceDefinition def, bool named)
    {
        var list = new JsonArray();
        if (named)
        {
            list.Add(new JsonObject { ["name"] = "name", ["in"] = "path", ["required"] = true, ["description"] = $"name of the {def.Kind}", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } });
        }
        if (def.Namespaced)
        {
            list.Add(new JsonObject { ["name"] = "namespace", ["in"] = "path", ["required"] = true, ["description"] = "object name and auth scope, such as for teams and projects", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } });
        }
        return list;
    }

    private static JsonObject Operation(ResourceDefinition def, string action, string responseSchema, string[] queryParameters)
    {
        var parameters = new JsonArray();
        foreach (var p in queryParameters)
        {
            parameters.Add(new JsonObject
            {
                ["name"] = p,
                ["in"] = "query",
                ["description"] = p,
                ["schema"] = new JsonObject { ["type"] = p is "limit" or "timeoutSeconds" or "gracePeriodSeconds" ? "integer" : p is "watch" or "allowWatchBookmarks" or "force" ? "boolean" : "string", ["uniqueItems"] = true },
            });
        }
        var op = new JsonObject
        {
            ["tags"] = new JsonArray(def.GroupVersion),
            ["description"] = $"{action} {def.Kind}",
            ["operationId"] = action + def.GroupVersion.Replace("/", "", StringComparison.Ordinal).Replace(".", "", StringComparison.Ordinal) + def.Kind,
            ["parameters"] = parameters,
            ["responses"] = new JsonObject
            {
                ["200"] = new JsonObject
                {
                    ["description"] = "OK",
                    ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = new JsonObject { ["$ref"] = "#/components/schemas/" + responseSchema } } },
                },
            },
            ["x-kubernetes-action"] = action,
            ["x-kubernetes-group-version-kind"] = Gvk(def, def.Kind),
        };
        if (action is "post" or "put" or "patch")
        {
            var mediaTypes = new JsonObject();
            var types = action == "patch"
                ? new[] { "application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml" }
                : ["application/json", "application/yaml"];
            foreach (var t in types)
            {
                mediaTypes[t] = new JsonObject { ["schema"] = new JsonObject { ["$ref"] = "#/components/schemas/" + (action == "patch" ? MetaPrefix + "Patch" : responseSchema) } };
            }
            op["requestBody"] = new JsonObject { ["content"] = mediaTypes, ["required"] = true };
        }
        return op;
    }

    internal static string Serialize(JsonNode node) => node.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
}
