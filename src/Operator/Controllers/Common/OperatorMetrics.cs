using Prometheus;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Runtime.Informer;
using PromMetrics = Prometheus.Metrics;

namespace Vmk.Operator.Controllers.Common;

/// <summary>
/// The operator's own series (docs/packaging.md): VirtualMachines by phase and each Host's heartbeat age. Both
/// are computed from the informer caches when Prometheus scrapes, so a dead daemon's age keeps growing without
/// any reconcile, and a replica that does not lead (no caches) reports nothing rather than stale figures.
/// </summary>
public sealed class OperatorMetrics
{
    private static readonly string[] Phases = ["Pending", "Scheduling", "Starting", "Running", "Stopping", "Stopped", "Migrating", "Succeeded", "Failed", "Unknown"];
    private readonly Gauge _vms;
    private readonly Gauge _heartbeatAge;
    private readonly HashSet<string> _reportedHosts = new(StringComparer.Ordinal);

    public OperatorMetrics(CollectorRegistry registry, Func<ObjectCache<VirtualMachine>?> vms, Func<ObjectCache<Host>?> hosts)
    {
        var factory = PromMetrics.WithCustomRegistry(registry);
        _vms = factory.CreateGauge("vmkernel_virtualmachines", "VirtualMachine objects by status.phase.", new GaugeConfiguration { LabelNames = ["phase"] });
        _heartbeatAge = factory.CreateGauge("vmkernel_host_heartbeat_age_seconds", "Now minus the Host's last heartbeat (status.heartbeat written by vmkerneld).",
            new GaugeConfiguration { LabelNames = ["host"] });
        registry.AddBeforeCollectCallback(() => Update(vms(), hosts()));
    }

    private void Update(ObjectCache<VirtualMachine>? vms, ObjectCache<Host>? hosts)
    {
        if (vms is not null)
        {
            var counts = vms.List().GroupBy(v => v.Phase ?? "Pending").ToDictionary(g => g.Key, g => g.Count());
            foreach (var phase in Phases.Union(counts.Keys))
            {
                _vms.WithLabels(phase).Set(counts.GetValueOrDefault(phase));
            }
        }
        lock (_reportedHosts)
        {
            var now = DateTimeOffset.UtcNow;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var host in hosts?.List() ?? [])
            {
                if (host.HeartbeatAgeSeconds(now) is { } age)
                {
                    _heartbeatAge.WithLabels(host.Name).Set(age);
                    seen.Add(host.Name);
                }
            }
            foreach (var gone in _reportedHosts.Except(seen).ToList())
            {
                _heartbeatAge.RemoveLabelled(gone);
                _reportedHosts.Remove(gone);
            }
            _reportedHosts.UnionWith(seen);
        }
    }
}
