namespace Vmk.ApiServer.Registry;

/// <summary>
/// The resources served right now: built-in types plus one entry per served version of every established CRD.
/// <see cref="Generation"/> changes with every CRD change, so discovery and OpenAPI documents can be re-hashed.
/// </summary>
public sealed class ResourceRegistry
{
    private readonly Lock _lock = new();
    private List<ResourceDefinition> _all = [];

    public long Generation { get; private set; }

    public void AddBuiltin(ResourceDefinition definition)
    {
        lock (_lock)
        {
            _all = [.. _all, definition];
            Generation++;
        }
    }

    /// <summary>Replaces whatever the CRD named <paramref name="crdName"/> served with <paramref name="definitions"/>.</summary>
    public void SetCrd(string crdName, IReadOnlyList<ResourceDefinition> definitions)
    {
        lock (_lock)
        {
            _all = [.. _all.Where(d => d.CrdName != crdName), .. definitions];
            Generation++;
        }
    }

    public IReadOnlyList<ResourceDefinition> Snapshot()
    {
        lock (_lock)
        {
            return _all;
        }
    }

    public ResourceDefinition? Find(string group, string version, string plural)
    {
        var all = Snapshot();
        foreach (var d in all)
        {
            if (d.Group == group && d.Version == version && d.Plural == plural)
            {
                return d;
            }
        }
        return null;
    }

    /// <summary>The definition that names objects of a storage resource in the garbage collector's requests.</summary>
    public ResourceDefinition? ForStorage(string storageResource)
    {
        var all = Snapshot();
        return all.FirstOrDefault(d => d.StorageResource == storageResource && d.Converter is null)
            ?? all.FirstOrDefault(d => d.StorageResource == storageResource);
    }

    /// <summary>Group names in the order discovery lists them (core first, then by registration).</summary>
    public IReadOnlyList<string> Groups()
        => Snapshot().Select(d => d.Group).Where(g => g.Length > 0).Distinct(StringComparer.Ordinal).ToList();
}
