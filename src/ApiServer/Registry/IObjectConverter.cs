using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Registry;

/// <summary>
/// Converts between a resource's stored form and the form one API version serves (events.k8s.io/v1 Events are
/// stored as core/v1 Events, as kube-apiserver does, so both APIs see the same objects).
/// </summary>
public interface IObjectConverter
{
    JsonObject ToStorage(JsonObject served);

    JsonObject FromStorage(JsonObject stored);

    /// <summary>Maps a field selector label of the served version to the stored field path.</summary>
    string MapFieldLabel(string label);
}
