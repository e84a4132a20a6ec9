namespace Vmk.ApiServer.Http;

/// <summary>Watch query parameters. <see cref="FromResourceVersion"/> null means "current state first".</summary>
public sealed record WatchRequest(long? FromResourceVersion, bool AllowBookmarks, bool SendInitialEvents, int? TimeoutSeconds, bool AsTable, string IncludeObject);
