using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Patching;

/// <summary>
/// Strategic merge patch for the built-in types this server serves (ConfigMap, Secret, Namespace, Lease, Event):
/// their fields are maps and scalars, so it is a merge patch that also honours the <c>$patch: delete|replace</c>
/// directive, merges <c>metadata.finalizers</c> as a set and <c>metadata.ownerReferences</c> by uid, and drops the
/// other <c>$</c>-directives kubectl adds. Custom resources get 415, as from kube-apiserver.
/// </summary>
public static class StrategicMergePatch
{
    public static JsonNode? Apply(JsonNode? target, JsonNode? patch, string path = "")
    {
        if (patch is not JsonObject patchObj)
        {
            return patch?.DeepClone();
        }
        if (Schema.JsonKinds.GetString(patchObj["$patch"]) is { } directive)
        {
            if (directive == "delete")
            {
                return null;
            }
            if (directive == "replace")
            {
                var copy = (JsonObject)patchObj.DeepClone();
                copy.Remove("$patch");
                return StripDirectives(copy);
            }
        }
        var result = target as JsonObject ?? new JsonObject();
        foreach (var (key, value) in patchObj)
        {
            if (key.StartsWith('$'))
            {
                continue;
            }
            if (key.StartsWith("$deleteFromPrimitiveList/", StringComparison.Ordinal))
            {
                continue;
            }
            var childPath = path.Length == 0 ? key : path + "." + key;
            if (value is null)
            {
                result.Remove(key);
            }
            else if (childPath == "metadata.finalizers" && value is JsonArray add && result[key] is JsonArray existing)
            {
                var merged = new JsonArray();
                foreach (var item in existing.Concat(add))
                {
                    if (!merged.Any(m => JsonNode.DeepEquals(m, item)))
                    {
                        merged.Add(item?.DeepClone());
                    }
                }
                result[key] = merged;
            }
            else if (childPath == "metadata.ownerReferences" && value is JsonArray refs && result[key] is JsonArray current)
            {
                var merged = (JsonArray)current.DeepClone();
                foreach (var r in refs)
                {
                    var uid = Schema.JsonKinds.GetString(r?["uid"]);
                    var at = merged.Select((m, i) => (m, i)).FirstOrDefault(x => Schema.JsonKinds.GetString(x.m?["uid"]) == uid);
                    if (at.m is not null)
                    {
                        if (Schema.JsonKinds.GetString(r?["$patch"]) == "delete")
                        {
                            merged.RemoveAt(at.i);
                        }
                        else
                        {
                            merged[at.i] = StripDirectives(r?.DeepClone());
                        }
                    }
                    else if (Schema.JsonKinds.GetString(r?["$patch"]) != "delete")
                    {
                        merged.Add(StripDirectives(r?.DeepClone()));
                    }
                }
                result[key] = merged;
            }
            else
            {
                var merged = Apply(result[key]?.DeepClone(), value, childPath);
                if (merged is null)
                {
                    result.Remove(key);
                }
                else
                {
                    result[key] = merged;
                }
            }
        }
        return result;
    }

    private static JsonNode? StripDirectives(JsonNode? node)
    {
        if (node is JsonObject o)
        {
            foreach (var key in o.Select(kv => kv.Key).Where(k => k.StartsWith('$')).ToList())
            {
                o.Remove(key);
            }
            foreach (var (_, v) in o)
            {
                StripDirectives(v);
            }
        }
        return node;
    }
}
