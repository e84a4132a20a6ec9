using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Storage;

/// <summary>
/// One committed version of an object. Never mutated after commit: readers share it without copying, writers
/// clone <see cref="Object"/> before changing it.
/// </summary>
public sealed class StoredObject
{
    public StoredObject(string resource, string ns, string name, long resourceVersion, JsonObject obj, byte[] json)
    {
        Resource = resource;
        Namespace = ns;
        Name = name;
        ResourceVersion = resourceVersion;
        Object = obj;
        Json = json;
        Uid = Schema.JsonKinds.GetString(obj["metadata"]?["uid"]) ?? "";
    }

    /// <summary>Storage resource, e.g. "vmkernel.io/virtualmachines" or "/events".</summary>
    public string Resource { get; }

    public string Namespace { get; }

    public string Name { get; }

    public long ResourceVersion { get; }

    public string Uid { get; }

    public JsonObject Object { get; }

    /// <summary>UTF-8 JSON of <see cref="Object"/>, written to lists and watches without re-serialising.</summary>
    public byte[] Json { get; }

    public string Key => StoreKey(Namespace, Name);

    public static string StoreKey(string ns, string name) => ns.Length == 0 ? name : ns + "/" + name;

    public JsonObject CloneObject() => (JsonObject)Object.DeepClone();
}
