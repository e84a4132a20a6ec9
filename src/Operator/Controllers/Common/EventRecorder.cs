using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Vmk.Operator.Apis.V1Alpha1;

namespace Vmk.Operator.Controllers.Common;

/// <summary>
/// Records core/v1 Events on the objects the operator manages (what `kubectl describe` shows). Events of
/// cluster-scoped objects go to the "default" namespace, as Kubernetes does. A failed event write is logged and
/// never fails a reconcile.
/// </summary>
public sealed class EventRecorder(IKubernetes client, ILogger<EventRecorder> logger)
{
    public const string Component = "vm-operator";

    public async Task RecordAsync(CustomObject obj, string type, string reason, string message, CancellationToken ct)
    {
        var ns = obj.Namespace ?? "default";
        var now = DateTime.UtcNow;
        var ev = new Corev1Event
        {
            Metadata = new V1ObjectMeta { Name = $"{obj.Name}.{Guid.NewGuid().ToString("N")[..16]}", NamespaceProperty = ns },
            InvolvedObject = new V1ObjectReference
            {
                ApiVersion = obj.ApiVersion,
                Kind = obj.Kind,
                Name = obj.Name,
                NamespaceProperty = obj.Namespace,
                Uid = obj.Metadata.Uid,
                ResourceVersion = obj.Metadata.ResourceVersion,
            },
            Type = type,
            Reason = reason,
            Message = message,
            Source = new V1EventSource { Component = Component },
            ReportingComponent = Component,
            ReportingInstance = Environment.MachineName,
            FirstTimestamp = now,
            LastTimestamp = now,
            Count = 1,
        };
        try
        {
            await client.CoreV1.CreateNamespacedEventAsync(ev, ns, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("Could not record event {Reason} on {Kind} {Name}: {Error}", reason, obj.Kind, obj.Name, e.Message);
        }
        logger.LogInformation("{Kind} {Namespace}/{Name}: {Reason}: {Message}", obj.Kind, obj.Namespace, obj.Name, reason, message);
    }

    public Task NormalAsync(CustomObject obj, string reason, string message, CancellationToken ct) => RecordAsync(obj, "Normal", reason, message, ct);

    public Task WarningAsync(CustomObject obj, string reason, string message, CancellationToken ct) => RecordAsync(obj, "Warning", reason, message, ct);
}
