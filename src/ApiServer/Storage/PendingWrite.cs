namespace Vmk.ApiServer.Storage;

/// <summary>A committed-in-memory change waiting for its batch to reach disk. <see cref="Data"/> null: a delete.</summary>
internal sealed record PendingWrite(string Resource, string Namespace, string Name, long ResourceVersion, byte[]? Data, WatchEvent Event);
