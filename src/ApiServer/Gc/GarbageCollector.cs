using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer.Api;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Registry;
using Vmk.ApiServer.Schema;
using Vmk.ApiServer.Storage;

namespace Vmk.ApiServer.Gc;

/// <summary>
/// kube-controller-manager's garbage collector and namespace controller, in one loop: dependents whose owners are
/// all gone are deleted (background cascading), references to vanished owners are dropped while another owner
/// lives, the <c>orphan</c> and <c>foregroundDeletion</c> finalizers are processed, and a terminating Namespace is
/// emptied and then removed. Runs after every commit that may leave garbage, and once at start (after a restart).
/// </summary>
public sealed class GarbageCollector : IAsyncDisposable
{
    private readonly ObjectService _service;
    private readonly ResourceRegistry _registry;
    private readonly ILogger _logger;
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _passes;

    public GarbageCollector(ObjectService service, ResourceRegistry registry, ILogger logger)
    {
        _service = service;
        _registry = registry;
        _logger = logger;
        _service.GarbageMayExist += Poke;
        _loop = Task.Run(RunAsync);
        Poke();
    }

    /// <summary>Completed passes, for tests that wait for the collector to settle.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    public void Poke() => _signal.Writer.TryWrite(true);

    private async Task RunAsync()
    {
        var ct = _stop.Token;
        try
        {
            while (await _signal.Reader.WaitToReadAsync(ct))
            {
                _signal.Reader.TryRead(out _);
                try
                {
                    // Repeat while a pass changed something: one deletion can orphan the next level.
                    for (var i = 0; i < 100 && Pass(); i++)
                    {
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _logger.LogError(e, "Garbage collection pass failed; retrying on the next change");
                }
                Interlocked.Increment(ref _passes);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One scan; true if it changed anything.</summary>
    private bool Pass()
    {
        var all = _service.Store.All();
        var live = all.Where(o => o.Uid.Length > 0).ToDictionary(o => o.Uid, o => o);
        var changed = false;

        foreach (var owner in all.Where(o => o.Object["metadata"]?["deletionTimestamp"] is not null))
        {
            var finalizers = ObjectService.Finalizers(owner.Object).ToList();
            var dependents = all.Where(d => OwnerUids(d).Contains(owner.Uid)).ToList();
            if (finalizers.Contains("orphan"))
            {
                foreach (var d in dependents)
                {
                    changed |= DropOwnerRefs(d, [owner.Uid]);
                }
                changed |= RemoveFinalizer(owner, "orphan");
            }
            else if (finalizers.Contains("foregroundDeletion"))
            {
                if (dependents.Count == 0)
                {
                    changed |= RemoveFinalizer(owner, "foregroundDeletion");
                }
                foreach (var d in dependents.Where(d => d.Object["metadata"]?["deletionTimestamp"] is null))
                {
                    changed |= DeleteObject(d, "Foreground");
                }
            }
            if (owner.Resource == "/namespaces")
            {
                changed |= CleanNamespace(owner, all);
            }
            if (owner.Resource == "apiextensions.k8s.io/customresourcedefinitions" && finalizers.Contains(CrdDefinitions.CleanupFinalizer))
            {
                changed |= CleanCustomResources(owner, all);
            }
        }

        foreach (var dependent in all)
        {
            var owners = OwnerUids(dependent);
            if (owners.Count == 0)
            {
                continue;
            }
            var missing = owners.Where(uid => !live.ContainsKey(uid)).ToList();
            if (missing.Count == 0)
            {
                continue;
            }
            if (missing.Count == owners.Count)
            {
                if (dependent.Object["metadata"]?["deletionTimestamp"] is null)
                {
                    changed |= DeleteObject(dependent, "Background");
                }
            }
            else
            {
                changed |= DropOwnerRefs(dependent, missing);
            }
        }
        return changed;
    }

    private bool CleanNamespace(StoredObject ns, List<StoredObject> all)
    {
        var contents = all.Where(o => o.Namespace == ns.Name).ToList();
        var changed = false;
        foreach (var o in contents.Where(o => o.Object["metadata"]?["deletionTimestamp"] is null))
        {
            changed |= DeleteObject(o, "Background");
        }
        if (contents.Count == 0)
        {
            var def = _registry.ForStorage("/namespaces")!;
            changed |= _service.Mutate(def, "", ns.Name, obj =>
            {
                if (obj["spec"] is JsonObject spec && spec["finalizers"] is JsonArray { Count: > 0 })
                {
                    spec.Remove("finalizers");
                    return true;
                }
                return false;
            });
        }
        return changed;
    }

    /// <summary>A deleted CRD takes its objects with it (their own finalizers still run) before it goes.</summary>
    private bool CleanCustomResources(StoredObject crd, List<StoredObject> all)
    {
        var group = JsonKinds.GetString(crd.Object["spec"]?["group"]);
        var plural = JsonKinds.GetString(crd.Object["spec"]?["names"]?["plural"]);
        var storage = $"{group}/{plural}";
        var objects = all.Where(o => o.Resource == storage).ToList();
        var changed = false;
        foreach (var o in objects.Where(o => o.Object["metadata"]?["deletionTimestamp"] is null))
        {
            changed |= DeleteObject(o, "Background");
        }
        if (objects.Count == 0)
        {
            changed |= RemoveFinalizer(crd, CrdDefinitions.CleanupFinalizer);
        }
        return changed;
    }

    private static HashSet<string> OwnerUids(StoredObject o)
        => (o.Object["metadata"]?["ownerReferences"] as JsonArray)?.Select(r => JsonKinds.GetString(r?["uid"])).OfType<string>().ToHashSet(StringComparer.Ordinal)
           ?? [];

    private bool DeleteObject(StoredObject o, string policy)
    {
        var def = _registry.ForStorage(o.Resource);
        if (def is null)
        {
            return false;
        }
        try
        {
            _service.Delete(def, o.Namespace, o.Name, new DeleteOptions(policy, PreconditionUid: o.Uid));
            _logger.LogDebug("Garbage collector deleted {Resource} {Namespace}/{Name}", o.Resource, o.Namespace, o.Name);
            return true;
        }
        catch (ApiException e) when (e.Code is 404 or 409)
        {
            return false;
        }
    }

    private bool DropOwnerRefs(StoredObject o, IReadOnlyCollection<string> uids)
    {
        var def = _registry.ForStorage(o.Resource);
        return def is not null && _service.Mutate(def, o.Namespace, o.Name, obj =>
        {
            if (obj["metadata"]?["ownerReferences"] is not JsonArray refs)
            {
                return false;
            }
            var keep = refs.Where(r => !uids.Contains(JsonKinds.GetString(r?["uid"]) ?? "")).Select(r => r?.DeepClone()).ToArray();
            if (keep.Length == refs.Count)
            {
                return false;
            }
            var meta = (JsonObject)obj["metadata"]!;
            if (keep.Length == 0)
            {
                meta.Remove("ownerReferences");
            }
            else
            {
                meta["ownerReferences"] = new JsonArray(keep);
            }
            return true;
        });
    }

    private bool RemoveFinalizer(StoredObject o, string finalizer)
    {
        var def = _registry.ForStorage(o.Resource);
        return def is not null && _service.Mutate(def, o.Namespace, o.Name, obj =>
        {
            if (obj["metadata"]?["finalizers"] is not JsonArray list)
            {
                return false;
            }
            var keep = list.Where(f => JsonKinds.GetString(f) != finalizer).Select(f => f?.DeepClone()).ToArray();
            if (keep.Length == list.Count)
            {
                return false;
            }
            ((JsonObject)obj["metadata"]!)["finalizers"] = new JsonArray(keep);
            if (keep.Length == 0)
            {
                ((JsonObject)obj["metadata"]!).Remove("finalizers");
            }
            return true;
        });
    }

    public async ValueTask DisposeAsync()
    {
        _service.GarbageMayExist -= Poke;
        await _stop.CancelAsync();
        _signal.Writer.TryComplete();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }
}
