namespace Vmk.ApiServer.Storage;

/// <summary>A change as watchers see it. <see cref="Previous"/> lets a filtered watch turn a change that leaves
/// its selector into DELETED, and one that enters it into ADDED, as kube-apiserver's watch cache does.</summary>
public sealed record WatchEvent(string Type, StoredObject? Object, StoredObject? Previous, long ResourceVersion)
{
    public const string Added = "ADDED";
    public const string Modified = "MODIFIED";
    public const string Deleted = "DELETED";
    public const string Bookmark = "BOOKMARK";

    public string? Resource => Object?.Resource;
}
