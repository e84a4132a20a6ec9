using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Api;

/// <summary>The object after a delete request: gone (<see cref="Deleted"/>) or marked with deletionTimestamp.</summary>
public sealed record DeleteResult(JsonObject Object, bool Deleted);
