using System.Runtime.CompilerServices;
using System.Text.Json;
using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Informer;

/// <summary>
/// <see cref="IResourceApi{T}"/> for a custom resource through KubernetesClient's typed custom-object calls.
/// With <paramref name="namespace"/> null it lists and watches every namespace (or a cluster-scoped resource).
/// </summary>
public sealed class CustomResourceApi<T>(IKubernetes client, string group, string version, string plural, string? @namespace = null) : IResourceApi<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    public string Resource => plural + "." + group;

    public async Task<ResourceList<T>> ListAsync(CancellationToken ct)
    {
        using var response = @namespace is null
            ? await client.CustomObjects.ListClusterCustomObjectWithHttpMessagesAsync<ResourceList<T>>(group, version, plural, cancellationToken: ct).ConfigureAwait(false)
            : await client.CustomObjects.ListNamespacedCustomObjectWithHttpMessagesAsync<ResourceList<T>>(group, version, @namespace, plural, cancellationToken: ct).ConfigureAwait(false);
        return response.Body;
    }

    public async IAsyncEnumerable<(WatchEventType Type, T Object)> WatchAsync(string resourceVersion, TimeSpan timeout, Action<Exception> onError,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var seconds = (int)Math.Max(1, timeout.TotalSeconds);
        var events = @namespace is null
            ? client.CustomObjects.WatchListClusterCustomObjectAsync(
                group, version, plural, allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: seconds, onError: onError, cancellationToken: ct)
            : client.CustomObjects.WatchListNamespacedCustomObjectAsync(
                group, version, @namespace, plural, allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: seconds, onError: onError, cancellationToken: ct);
        await foreach (var (type, item) in events.ConfigureAwait(false))
        {
            // The custom-object watch hands out untyped JSON; the informer wants T.
            var typed = item switch
            {
                T t => t,
                JsonElement e => KubernetesJson.Deserialize<T>(e.GetRawText()),
                _ => KubernetesJson.Deserialize<T>(KubernetesJson.Serialize(item)),
            };
            yield return (type, typed);
        }
    }

    public async Task<T> PatchAsync(ObjectKey key, V1Patch patch, CancellationToken ct)
        => key.Namespace is null
            ? await client.CustomObjects.PatchClusterCustomObjectAsync<T>(patch, group, version, plural, key.Name, cancellationToken: ct).ConfigureAwait(false)
            : await client.CustomObjects.PatchNamespacedCustomObjectAsync<T>(patch, group, version, key.Namespace, plural, key.Name, cancellationToken: ct).ConfigureAwait(false);
}
