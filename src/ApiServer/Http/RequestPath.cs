namespace Vmk.ApiServer.Http;

/// <summary>A parsed resource URL: <c>/api/v1[/watch][/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]</c>
/// or the same under <c>/apis/{group}/{version}</c>.</summary>
public sealed record RequestPath(string Group, string Version, string? Namespace, string Resource, string? Name, string? Subresource, bool WatchPrefix)
{
    /// <summary>Null when the segments are not a resource URL (discovery and OpenAPI are routed before).</summary>
    public static RequestPath? Parse(string[] segments)
    {
        string group;
        string version;
        int rest;
        if (segments.Length >= 2 && segments[0] == "api")
        {
            group = "";
            version = segments[1];
            rest = 2;
        }
        else if (segments.Length >= 3 && segments[0] == "apis")
        {
            group = segments[1];
            version = segments[2];
            rest = 3;
        }
        else
        {
            return null;
        }
        var parts = segments[rest..];
        var watch = false;
        if (parts.Length > 0 && parts[0] == "watch")
        {
            watch = true;
            parts = parts[1..];
        }
        if (parts.Length == 0)
        {
            return null;
        }
        string? ns = null;
        // namespaces/{name}/status|finalize addresses the Namespace itself; namespaces/{ns}/{resource} a namespaced resource.
        if (parts[0] == "namespaces" && parts.Length >= 3 && !(group.Length == 0 && parts.Length == 3 && parts[2] is "status" or "finalize"))
        {
            ns = parts[1];
            parts = parts[2..];
        }
        return parts.Length switch
        {
            1 => new RequestPath(group, version, ns, parts[0], null, null, watch),
            2 => new RequestPath(group, version, ns, parts[0], parts[1], null, watch),
            3 => new RequestPath(group, version, ns, parts[0], parts[1], parts[2], watch),
            _ => null,
        };
    }
}
