using k8s;
using k8s.Models;

namespace Vmk.Operator.Runtime.Informer;

/// <summary>
/// The few API calls the runtime makes for one resource: list, watch from a resourceVersion, and patch (finalizers).
/// <see cref="CustomResourceApi{T}"/> covers every CRD; a built-in type needs its own small implementation.
/// </summary>
public interface IResourceApi<T>
    where T : class, IKubernetesObject<V1ObjectMeta>
{
    /// <summary>A name for logs, e.g. <c>virtualmachines.vmkernel.io</c>.</summary>
    string Resource { get; }

    /// <summary>A consistent list; its <c>metadata.resourceVersion</c> is where the following watch starts.</summary>
    Task<ResourceList<T>> ListAsync(CancellationToken ct);

    /// <summary>
    /// Watches changes after <paramref name="resourceVersion"/> with bookmarks, for at most <paramref name="timeout"/>
    /// (the server ends the stream then). ERROR events (410 Gone among them) reach <paramref name="onError"/> as
    /// <see cref="KubernetesException"/>; transport failures are thrown from the enumeration.
    /// </summary>
    IAsyncEnumerable<(WatchEventType Type, T Object)> WatchAsync(string resourceVersion, TimeSpan timeout, Action<Exception> onError, CancellationToken ct);

    Task<T> PatchAsync(ObjectKey key, V1Patch patch, CancellationToken ct);
}
