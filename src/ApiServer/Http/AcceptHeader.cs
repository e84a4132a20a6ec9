namespace Vmk.ApiServer.Http;

/// <summary>
/// The media-type parameters Kubernetes clients negotiate with (<c>application/json;as=Table;v=v1;g=meta.k8s.io</c>),
/// parsed tolerant of spaces and order.
/// </summary>
public static class AcceptHeader
{
    public static bool Wants(string accept, string asKind, string group, string? version = null)
    {
        foreach (var range in accept.Split(','))
        {
            var parts = range.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in parts.Skip(1))
            {
                var eq = p.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    parameters[p[..eq].Trim()] = p[(eq + 1)..].Trim().Trim('"');
                }
            }
            if (parameters.GetValueOrDefault("as") == asKind && parameters.GetValueOrDefault("g") == group
                && (version is null || parameters.GetValueOrDefault("v") == version))
            {
                return true;
            }
        }
        return false;
    }
}
