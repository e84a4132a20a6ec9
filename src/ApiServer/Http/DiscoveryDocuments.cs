using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Vmk.ApiServer.Registry;

namespace Vmk.ApiServer.Http;

/// <summary>
/// Discovery: the legacy documents (APIVersions, APIGroupList, APIGroup, APIResourceList) and the aggregated
/// apidiscovery.k8s.io v2 (and v2beta1) lists that kubectl 1.30+ asks for first.
/// </summary>
public sealed class DiscoveryDocuments
{
    public const string AggregatedV2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    public const string AggregatedV2Beta1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

    private readonly ResourceRegistry _registry;

    public DiscoveryDocuments(ResourceRegistry registry)
    {
        _registry = registry;
    }

    public static JsonObject Version() => new()
    {
        ["major"] = "1",
        ["minor"] = "32",
        ["gitVersion"] = "v1.32.0-vmk",
        ["gitCommit"] = "",
        ["gitTreeState"] = "clean",
        ["buildDate"] = "2025-01-01T00:00:00Z",
        ["goVersion"] = "dotnet" + Environment.Version,
        ["compiler"] = "dotnet",
        ["platform"] = "linux/amd64",
    };

    public static JsonObject CoreVersions(string serverAddress) => new()
    {
        ["kind"] = "APIVersions",
        ["versions"] = new JsonArray("v1"),
        ["serverAddressByClientCIDRs"] = new JsonArray(new JsonObject { ["clientCIDR"] = "0.0.0.0/0", ["serverAddress"] = serverAddress }),
    };

    public JsonObject GroupList()
    {
        var groups = new JsonArray();
        foreach (var g in _registry.Groups())
        {
            groups.Add(Group(g));
        }
        return new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = groups };
    }

    public JsonObject? Group(string group)
    {
        var versions = Versions(group);
        if (versions.Count == 0)
        {
            return null;
        }
        var list = new JsonArray();
        foreach (var v in versions)
        {
            list.Add(new JsonObject { ["groupVersion"] = $"{group}/{v}", ["version"] = v });
        }
        return new JsonObject
        {
            ["kind"] = "APIGroup",
            ["apiVersion"] = "v1",
            ["name"] = group,
            ["versions"] = list,
            ["preferredVersion"] = new JsonObject { ["groupVersion"] = $"{group}/{versions[0]}", ["version"] = versions[0] },
        };
    }

    /// <summary>Versions of a group, preferred first (kube's version priority: GA, beta, alpha, then by number).</summary>
    private List<string> Versions(string group)
        => _registry.Snapshot().Where(d => d.Group == group).Select(d => d.Version).Distinct(StringComparer.Ordinal)
            .OrderByDescending(VersionPriority).ToList();

    private static (int, int, int) VersionPriority(string v)
    {
        var m = System.Text.RegularExpressions.Regex.Match(v, "^v(\\d+)(?:(alpha|beta)(\\d+))?$");
        if (!m.Success)
        {
            return (-1, 0, 0);
        }
        var major = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var stage = m.Groups[2].Value switch { "" => 3, "beta" => 2, _ => 1 };
        var minor = m.Groups[3].Success ? int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
        return (stage, major, minor);
    }

    public JsonObject? ResourceList(string group, string version)
    {
        var defs = _registry.Snapshot().Where(d => d.Group == group && d.Version == version).ToList();
        if (defs.Count == 0)
        {
            return null;
        }
        var resources = new JsonArray();
        foreach (var d in defs)
        {
            var r = new JsonObject
            {
                ["name"] = d.Plural,
                ["singularName"] = d.Singular,
                ["namespaced"] = d.Namespaced,
                ["kind"] = d.Kind,
                ["verbs"] = Strings(d.Verbs),
                ["storageVersionHash"] = Hash(d.GroupVersion + "/" + d.Kind)[..12],
            };
            if (d.ShortNames.Count > 0)
            {
                r["shortNames"] = Strings(d.ShortNames);
            }
            if (d.Categories.Count > 0)
            {
                r["categories"] = Strings(d.Categories);
            }
            resources.Add(r);
            if (d.StatusSubresource)
            {
                resources.Add(new JsonObject
                {
                    ["name"] = d.Plural + "/status",
                    ["singularName"] = "",
                    ["namespaced"] = d.Namespaced,
                    ["kind"] = d.Kind,
                    ["verbs"] = Strings(["get", "patch", "update"]),
                });
            }
        }
        return new JsonObject
        {
            ["kind"] = "APIResourceList",
            ["apiVersion"] = "v1",
            ["groupVersion"] = group.Length == 0 ? version : $"{group}/{version}",
            ["resources"] = resources,
        };
    }

    /// <summary>APIGroupDiscoveryList for /api (core only) or /apis (every named group).</summary>
    public JsonObject Aggregated(bool core, string apiVersion)
    {
        var items = new JsonArray();
        var groups = core ? [""] : _registry.Groups();
        foreach (var g in groups)
        {
            var versions = new JsonArray();
            foreach (var v in Versions(g))
            {
                var resources = new JsonArray();
                foreach (var d in _registry.Snapshot().Where(x => x.Group == g && x.Version == v))
                {
                    var kind = new JsonObject { ["group"] = g, ["version"] = v, ["kind"] = d.Kind };
                    var r = new JsonObject
                    {
                        ["resource"] = d.Plural,
                        ["responseKind"] = kind,
                        ["scope"] = d.Namespaced ? "Namespaced" : "Cluster",
                        ["singularResource"] = d.Singular,
                        ["verbs"] = Strings(d.Verbs),
                    };
                    if (d.ShortNames.Count > 0)
                    {
                        r["shortNames"] = Strings(d.ShortNames);
                    }
                    if (d.Categories.Count > 0)
                    {
                        r["categories"] = Strings(d.Categories);
                    }
                    if (d.StatusSubresource)
                    {
                        r["subresources"] = new JsonArray(new JsonObject
                        {
                            ["subresource"] = "status",
                            ["responseKind"] = kind.DeepClone(),
                            ["verbs"] = Strings(["get", "patch", "update"]),
                        });
                    }
                    resources.Add(r);
                }
                versions.Add(new JsonObject { ["version"] = v, ["resources"] = resources, ["freshness"] = "Current" });
            }
            var meta = new JsonObject { ["creationTimestamp"] = null };
            if (g.Length > 0)
            {
                meta["name"] = g;
            }
            items.Add(new JsonObject { ["metadata"] = meta, ["versions"] = versions });
        }
        return new JsonObject
        {
            ["kind"] = "APIGroupDiscoveryList",
            ["apiVersion"] = apiVersion,
            ["metadata"] = new JsonObject(),
            ["items"] = items,
        };
    }

    private static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());

    public static string Hash(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));
}
