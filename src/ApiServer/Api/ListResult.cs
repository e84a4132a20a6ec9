using Vmk.ApiServer.Storage;

namespace Vmk.ApiServer.Api;

public sealed record ListResult(List<StoredObject> Items, long ResourceVersion, string? Continue, long? RemainingItemCount);
