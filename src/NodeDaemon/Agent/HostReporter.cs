using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Configuration;
using Vmk.NodeDaemon.Services;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// Keeps this host's cluster-scoped <c>Host</c> (vmkernel.io/v1alpha1) current: creates it when missing and
/// merge-patches its status subresource every interval with capacity, allocatable, allocated, accelerator,
/// datastores, heartbeat and conditions. The spec belongs to people and the operator (maintenance,
/// unschedulable): the daemon only fills in spec.endpoint when it creates the object or the endpoint moved.
/// The phase it writes is Ready or NotReady; it leaves the maintenance phases, which the operator writes, alone.
/// </summary>
public sealed class HostReporter(
    IOptions<DaemonOptions> options,
    VmkernelRunner vmkernel,
    HostAllocation allocation,
    DatastoreObserver datastores,
    IServer server,
    IHostApplicationLifetime lifetime,
    ILogger<HostReporter> logger) : BackgroundService
{
    public const string Group = "vmkernel.io";
    public const string Version = "v1alpha1";
    public const string Plural = "hosts";

    private readonly Dictionary<string, JsonObject> _conditions = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        KubernetesClientConfiguration? config;
        try
        {
            config = LoadConfig();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bad kubeconfig costs the Host object, never the VMs: the daemon keeps serving its API.
            logger.LogError("Kubeconfig {Kubeconfig} cannot be used ({Error}): the Host object is not written; fix the file and restart vmkerneld",
                options.Value.Kubeconfig, e.Message);
            return;
        }
        if (config is null)
        {
            logger.LogInformation("No kubeconfig and not in a pod: the Host object is not written (give --kubeconfig to report this host)");
            return;
        }
        using var client = new Kubernetes(config);
        var interval = TimeSpan.FromSeconds(Math.Max(0.2, options.Value.ReportIntervalSeconds));
        using var timer = new PeriodicTimer(interval);
        var failures = 0;
        // The endpoint names the bound gRPC port, known only once Kestrel has started.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        {
            await started.Task.WaitAsync(stoppingToken);
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ReportAsync(client, stoppingToken);
                if (failures > 0)
                {
                    logger.LogInformation("Host object {Host} reported again after {Failures} failed attempts", options.Value.EffectiveHostName, failures);
                }
                failures = 0;
            }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                failures++;
                // One line per failure streak start and then every 30th: an unreachable API server must not flood the log.
                if (failures == 1 || failures % 30 == 0)
                {
                    logger.LogWarning("Cannot report Host object {Host} ({Failures} attempts): {Error}", options.Value.EffectiveHostName, failures, Describe(e));
                }
            }
            try
            {
                await timer.WaitForNextTickAsync(stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private KubernetesClientConfiguration? LoadConfig()
    {
        var path = options.Value.Kubeconfig;
        if (!string.IsNullOrEmpty(path))
        {
            return KubernetesClientConfiguration.BuildConfigFromConfigFile(path);
        }
        return KubernetesClientConfiguration.IsInCluster() ? KubernetesClientConfiguration.InClusterConfig() : null;
    }

    internal async Task ReportAsync(Kubernetes client, CancellationToken ct)
    {
        // The status patch carries the resourceVersion it was built from: someone else's write in between (the
        // operator's MaintenanceMode condition) makes it a conflict, and the report is built again from the new object.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await ReportOnceAsync(client, ct);
                return;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 5)
            {
                logger.LogDebug("Host object changed while this report was built (attempt {Attempt}); building it again", attempt);
            }
        }
    }

    private async Task ReportOnceAsync(Kubernetes client, CancellationToken ct)
    {
        var name = options.Value.EffectiveHostName;
        var endpoint = Endpoint();
        JsonElement? existing = null;
        try
        {
            existing = (JsonElement)await client.CustomObjects.GetClusterCustomObjectAsync(Group, Version, Plural, name, ct);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
        if (existing is null)
        {
            var body = new JsonObject
            {
                ["apiVersion"] = $"{Group}/{Version}",
                ["kind"] = "Host",
                ["metadata"] = new JsonObject { ["name"] = name, ["labels"] = new JsonObject { ["app.kubernetes.io/managed-by"] = "vmkerneld" } },
                ["spec"] = new JsonObject { ["endpoint"] = endpoint },
            };
            try
            {
                existing = (JsonElement)await client.CustomObjects.CreateClusterCustomObjectAsync(body, Group, Version, Plural, cancellationToken: ct);
                logger.LogInformation("Created Host object {Host} (endpoint {Endpoint})", name, endpoint);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
                existing = (JsonElement)await client.CustomObjects.GetClusterCustomObjectAsync(Group, Version, Plural, name, ct);
            }
        }
        var current = existing.Value;
        // Conditions are one array in a merge patch: taken from the object as it is now, so the ones others own
        // (the operator's MaintenanceMode) are written back unchanged instead of this daemon's old copy of them.
        LoadConditions(current);
        if (!(current.TryGetProperty("spec", out var spec) && spec.TryGetProperty("endpoint", out var ep) && ep.GetString() == endpoint))
        {
            var specPatch = new JsonObject { ["spec"] = new JsonObject { ["endpoint"] = endpoint } };
            current = (JsonElement)await client.CustomObjects.PatchClusterCustomObjectAsync(new V1Patch(specPatch.ToJsonString(), V1Patch.PatchType.MergePatch), Group, Version, Plural, name, cancellationToken: ct);
        }
        var phase = current.TryGetProperty("status", out var st) && st.TryGetProperty("phase", out var ph) ? ph.GetString() : null;
        var status = BuildStatus(phase);
        var patch = new JsonObject { ["status"] = status };
        if (current.TryGetProperty("metadata", out var meta) && meta.TryGetProperty("resourceVersion", out var rv) && rv.GetString() is { } version)
        {
            patch["metadata"] = new JsonObject { ["resourceVersion"] = version };
        }
        await client.CustomObjects.PatchClusterCustomObjectStatusAsync(new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch), Group, Version, Plural, name, cancellationToken: ct);
    }

    private JsonObject BuildStatus(string? currentPhase)
    {
        var host = vmkernel.Host;
        var now = DateTimeOffset.UtcNow;
        var snapshots = datastores.Snapshot();
        var vms = host.VirtualMachines;
        var poweredOn = vms.Count(vm => HostAllocation.IsPoweredOn(vm.State));
        var unhealthy = snapshots.Where(d => d.Fenced || d.HeartbeatAgeSeconds is null or > 5).ToList();
        var ready = SetCondition("Ready", true, "VmkernelRunning",
            $"vmkerneld {HostApi.Version} runs {poweredOn} of {vms.Count} VMs on {host.Accelerator.Accelerator.ToString().ToLowerInvariant()}", now);
        var datastoresReady = SetCondition("DatastoresReady", unhealthy.Count == 0,
            unhealthy.Count == 0 ? "HeartbeatsCurrent" : "HeartbeatStale",
            unhealthy.Count == 0
                ? $"{snapshots.Count} datastore(s) mounted, heartbeats current"
                : "datastore(s) " + string.Join(", ", unhealthy.Select(d => $"{d.Name} ({d.Problem ?? $"heartbeat {d.HeartbeatAgeSeconds:0.0} s old"})")) + ": check the device paths and the storage network",
            now);
        var phase = currentPhase is "EnteringMaintenance" or "Maintenance" ? currentPhase : (ready && datastoresReady ? "Ready" : "NotReady");
        var datastoreArray = new JsonArray();
        foreach (var d in snapshots)
        {
            var item = new JsonObject { ["name"] = d.Name, ["mounted"] = true, ["leases"] = d.LeasesHeld, ["fenced"] = d.Fenced };
            if (d.HeartbeatAgeSeconds is double age)
            {
                item["heartbeatAgeSeconds"] = Math.Round(age, 3);
            }
            datastoreArray.Add(item);
        }
        return new JsonObject
        {
            ["phase"] = phase,
            ["capacity"] = Quantities(allocation.Capacity),
            ["allocatable"] = Quantities(allocation.Allocatable),
            ["allocated"] = Quantities(allocation.Allocated),
            ["accelerator"] = new JsonObject
            {
                ["mode"] = host.Accelerator.Accelerator.ToString().ToLowerInvariant(),
                ["reason"] = host.Accelerator.Reason,
            },
            ["datastores"] = datastoreArray,
            ["portGroups"] = PortGroups(host),
            ["vms"] = poweredOn,
            ["heartbeat"] = now.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
            ["version"] = HostApi.Version,
            ["conditions"] = new JsonArray(_conditions.Values.Select(c => (JsonNode)c.DeepClone()).ToArray()),
        };
    }

    /// <summary>The port groups realized on this host, from the vSwitch's records (no kernel reads on every report).</summary>
    private static JsonArray PortGroups(Vmk.Vmkernel.VmkernelHost host) => new(host.Network.Switch.PortGroups.Select(r => (JsonNode)new JsonObject
    {
        ["name"] = r.Spec.Name,
        ["realized"] = true,
        ["bridge"] = r.Bridge,
        ["uplink"] = r.UplinkPort ?? "",
        ["vlanId"] = r.Spec.VlanId,
        ["mtu"] = r.Mtu,
        ["ports"] = r.Ports.Count,
    }).ToArray());

    /// <summary>Kubernetes quantities: CPU as cores or millicores, memory in Ki when it divides.</summary>
    internal static JsonObject Quantities(ResourceAmount r) => new()
    {
        ["cpu"] = r.CpuMillicores % 1000 == 0 ? (r.CpuMillicores / 1000).ToString(CultureInfo.InvariantCulture) : $"{r.CpuMillicores}m",
        ["memory"] = r.MemoryBytes % 1024 == 0 ? $"{r.MemoryBytes / 1024}Ki" : r.MemoryBytes.ToString(CultureInfo.InvariantCulture),
    };

    // lastTransitionTime moves only when the status flips, as Kubernetes conditions do.
    private bool SetCondition(string type, bool ok, string reason, string message, DateTimeOffset now)
    {
        var status = ok ? "True" : "False";
        var transition = now.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        if (_conditions.TryGetValue(type, out var previous) && previous["status"]?.GetValue<string>() == status && previous["lastTransitionTime"] is { } t)
        {
            transition = t.GetValue<string>();
        }
        _conditions[type] = new JsonObject
        {
            ["type"] = type,
            ["status"] = status,
            ["reason"] = reason,
            ["message"] = message,
            ["lastTransitionTime"] = transition,
        };
        return ok;
    }

    private void LoadConditions(JsonElement current)
    {
        _conditions.Clear();
        if (current.TryGetProperty("status", out var status) && status.TryGetProperty("conditions", out var conditions) && conditions.ValueKind == JsonValueKind.Array)
        {
            foreach (var c in conditions.EnumerateArray())
            {
                if (JsonNode.Parse(c.GetRawText()) is JsonObject o && o["type"]?.GetValue<string>() is { } type)
                {
                    _conditions[type] = o;
                }
            }
        }
    }

    private string Endpoint()
    {
        if (!string.IsNullOrEmpty(options.Value.AdvertiseAddress))
        {
            return options.Value.AdvertiseAddress;
        }
        var grpc = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault(a => a.StartsWith("https:", StringComparison.Ordinal));
        var port = grpc is not null ? new Uri(grpc).Port : DaemonOptions.ParseEndpoint(options.Value.GrpcListen, "--grpc-listen").Port;
        return $"{options.Value.EffectiveHostName}:{port}";
    }

    private static string Describe(Exception e) => e is HttpOperationException h
        ? $"{(int)h.Response.StatusCode} {h.Response.ReasonPhrase}: {Truncate(h.Response.Content)}"
        : e.Message;

    private static string Truncate(string? s) => s is null ? "" : s.Length > 300 ? s[..300] + "..." : s;
}
