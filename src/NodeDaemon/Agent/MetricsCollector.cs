using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Options;
using Prometheus;
using Vmk.NodeDaemon.Configuration;
using Vmk.NodeDaemon.Services;
using Vmk.Vmkernel.Qemu.Qmp;
using Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// The daemon's Prometheus metrics. Everything is read when Prometheus scrapes (a before-collect callback), from
/// the sources that hold the truth: /proc for QEMU's CPU time and resident memory, the NBD server's per-export
/// counters for disk I/O, /sys/class/net for tap traffic, the datastores for heartbeats and leases, the
/// VMkernel's QMP meter for command latency. Series of VMs and datastores that are gone are removed.
/// Every series carries the host label; per-VM series carry namespace and vm (the Kubernetes object's namespace
/// and name when the VM was defined for one, else the VM's host name and an empty namespace).
/// </summary>
public sealed class MetricsCollector : IHostedService, IDisposable
{
    private static readonly string[] VmLabels = ["host", "namespace", "vm"];

    // Linux reports process CPU time in clock ticks of USER_HZ, which is 100 on every architecture it supports.
    private const double ClockTicksPerSecond = 100;

    private readonly VmkernelRunner _vmkernel;
    private readonly HostAllocation _allocation;
    private readonly DatastoreObserver _datastores;
    private readonly VmOwnerStore _owners;
    private readonly string _host;
    private readonly ILogger _logger;
    private readonly MeterListener _qmpListener = new();
    private readonly Lock _collectGate = new();

    private readonly Counter _vmCpu;
    private readonly Gauge _vmRss;
    private readonly Gauge _vmMemoryConfigured;
    private readonly Gauge _vmVcpus;
    private readonly Gauge _vmState;
    private readonly Counter _diskOps;
    private readonly Counter _diskBytes;
    private readonly Counter _diskLatency;
    private readonly Counter _diskErrors;
    private readonly Counter _netBytes;
    private readonly Gauge _hostCpu;
    private readonly Gauge _hostMemory;
    private readonly Gauge _hostVms;
    private readonly Gauge _accelerator;
    private readonly Gauge _dsHeartbeatAge;
    private readonly Gauge _dsLeases;
    private readonly Gauge _dsCapacity;
    private readonly Gauge _dsFree;
    private readonly Gauge _dsFenced;
    private readonly Histogram _qmpLatency;
    private readonly Gauge _info;

    public MetricsCollector(VmkernelRunner vmkernel, HostAllocation allocation, DatastoreObserver datastores, VmOwnerStore owners,
        IOptions<DaemonOptions> options, ILogger<MetricsCollector> logger)
    {
        _vmkernel = vmkernel;
        _allocation = allocation;
        _datastores = datastores;
        _owners = owners;
        _host = options.Value.EffectiveHostName;
        _logger = logger;
        var f = Metrics.WithCustomRegistry(Metrics.DefaultRegistry);
        _vmCpu = f.CreateCounter("vmkernel_vm_cpu_seconds_total", "CPU time the VM's QEMU process used (all vCPUs and device emulation)", VmLabels);
        _vmRss = f.CreateGauge("vmkernel_vm_memory_resident_bytes", "Resident memory of the VM's QEMU process (guest RAM it touched plus QEMU's own)", VmLabels);
        _vmMemoryConfigured = f.CreateGauge("vmkernel_vm_memory_configured_bytes", "Guest RAM the VM is configured with", VmLabels);
        _vmVcpus = f.CreateGauge("vmkernel_vm_vcpus", "vCPUs the VM is configured with", VmLabels);
        _vmState = f.CreateGauge("vmkernel_vm_state", "1 for the VM's current power state", [.. VmLabels, "state"]);
        _diskOps = f.CreateCounter("vmkernel_vm_disk_operations_total", "Disk requests served to the VM by the VMkernel's NBD server", [.. VmLabels, "disk", "op"]);
        _diskBytes = f.CreateCounter("vmkernel_vm_disk_bytes_total", "Bytes read and written by the VM through the NBD server", [.. VmLabels, "disk", "op"]);
        _diskLatency = f.CreateCounter("vmkernel_vm_disk_latency_seconds_total",
            "Summed service time of the VM's disk requests; divide its rate by the rate of vmkernel_vm_disk_operations_total for the mean latency", [.. VmLabels, "disk", "op"]);
        _diskErrors = f.CreateCounter("vmkernel_vm_disk_errors_total", "Disk requests that failed", [.. VmLabels, "disk", "op"]);
        _netBytes = f.CreateCounter("vmkernel_vm_network_bytes_total", "Bytes the guest received (direction=receive) and sent (transmit) on a NIC", [.. VmLabels, "nic", "direction"]);
        _hostCpu = f.CreateGauge("vmkernel_host_cpu_millicores", "Host CPU: capacity, allocatable, allocated (reservations of powered-on VMs), configured (their vCPUs)", "host", "kind");
        _hostMemory = f.CreateGauge("vmkernel_host_memory_bytes", "Host memory: capacity, allocatable, allocated (reservations of powered-on VMs), configured (their RAM)", "host", "kind");
        _hostVms = f.CreateGauge("vmkernel_host_vms", "VMs on the host by power state", "host", "state");
        _accelerator = f.CreateGauge("vmkernel_host_accelerator", "1 for the accelerator the host's VMs run on", "host", "mode");
        _dsHeartbeatAge = f.CreateGauge("vmkernel_datastore_heartbeat_age_seconds", "Age of this host's heartbeat on the datastore", "host", "datastore");
        _dsLeases = f.CreateGauge("vmkernel_datastore_leases", "Disk leases this host holds on the datastore", "host", "datastore");
        _dsCapacity = f.CreateGauge("vmkernel_datastore_capacity_bytes", "Datastore capacity", "host", "datastore");
        _dsFree = f.CreateGauge("vmkernel_datastore_free_bytes", "Datastore free space", "host", "datastore");
        _dsFenced = f.CreateGauge("vmkernel_datastore_fenced", "1 when this host lost its heartbeat on the datastore and stopped writing", "host", "datastore");
        _qmpLatency = f.CreateHistogram("vmkernel_qmp_command_duration_seconds", "Time from sending a QMP command to QEMU's reply",
            new HistogramConfiguration { LabelNames = ["host", "command", "outcome"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
        _info = f.CreateGauge("vmkernel_daemon_info", "vmkerneld's version", "host", "version");
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _info.WithLabels(_host, HostApi.Version).Set(1);
        _qmpListener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == QmpMetrics.MeterName && instrument.Name == QmpMetrics.CommandDurationName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _qmpListener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
        {
            string command = "", outcome = "";
            foreach (var tag in tags)
            {
                if (tag.Key == "command")
                {
                    command = tag.Value as string ?? "";
                }
                else if (tag.Key == "outcome")
                {
                    outcome = tag.Value as string ?? "";
                }
            }
            _qmpLatency.WithLabels(_host, command, outcome).Observe(seconds);
        });
        _qmpListener.Start();
        Metrics.DefaultRegistry.AddBeforeCollectCallback(Collect);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _qmpListener.Dispose();

    private void Collect()
    {
        // Scrapes may overlap; one collection at a time keeps the counters' IncTo monotonic and the removal consistent.
        lock (_collectGate)
        {
            try
            {
                CollectHost();
                CollectVms();
                CollectDatastores();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                _logger.LogWarning("Metrics collection incomplete: {Error}", e.Message);
            }
        }
    }

    private void CollectHost()
    {
        foreach (var (kind, r) in new[] { ("capacity", _allocation.Capacity), ("allocatable", _allocation.Allocatable), ("allocated", _allocation.Allocated), ("configured", _allocation.Configured) })
        {
            _hostCpu.WithLabels(_host, kind).Set(r.CpuMillicores);
            _hostMemory.WithLabels(_host, kind).Set(r.MemoryBytes);
        }
        var vms = _vmkernel.Host.VirtualMachines;
        foreach (var state in Enum.GetValues<VmState>())
        {
            _hostVms.WithLabels(_host, state.ToString()).Set(vms.Count(vm => vm.State == state));
        }
        var mode = _vmkernel.Host.Accelerator.Accelerator.ToString().ToLowerInvariant();
        _accelerator.WithLabels(_host, mode).Set(1);
    }

    private void CollectVms()
    {
        var exports = _vmkernel.Host.Storage.Nbd.GetStatistics().ToDictionary(e => e.Name, StringComparer.Ordinal);
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var vm in _vmkernel.Host.VirtualMachines)
        {
            var owner = _owners.Get(vm.Name);
            string[] labels = [_host, owner.Namespace, owner.Name.Length > 0 ? owner.Name : vm.Name];
            live.Add(Key(labels));
            _vmMemoryConfigured.WithLabels(labels).Set(vm.Spec.MemoryBytes);
            _vmVcpus.WithLabels(labels).Set(vm.Spec.Cpu.VCpus);
            foreach (var state in Enum.GetValues<VmState>())
            {
                _vmState.WithLabels([.. labels, state.ToString()]).Set(vm.State == state ? 1 : 0);
            }
            if (vm.Pid is int pid && ReadProcess(pid) is var (cpuSeconds, rssBytes) && rssBytes > 0)
            {
                SetCounter(_vmCpu, labels, cpuSeconds);
                _vmRss.WithLabels(labels).Set(rssBytes);
            }
            else
            {
                _vmRss.WithLabels(labels).Set(0);
            }
            foreach (var disk in vm.Spec.Disks)
            {
                if (!exports.TryGetValue($"{vm.Name}/{disk.Name}", out var s))
                {
                    continue;
                }
                foreach (var (op, stats) in new[] { ("read", s.Read), ("write", s.Write), ("flush", s.Flush), ("trim", s.Trim), ("write_zeroes", s.WriteZeroes) })
                {
                    string[] l = [.. labels, disk.Name, op];
                    SetCounter(_diskOps, l, stats.Operations);
                    SetCounter(_diskBytes, l, stats.Bytes);
                    SetCounter(_diskLatency, l, stats.TotalLatency.TotalSeconds);
                    SetCounter(_diskErrors, l, stats.Errors);
                }
            }
            foreach (var nic in vm.Spec.Nics)
            {
                // The tap's transmit is what the guest receives, and the other way round.
                if (ReadNetCounter(nic.Tap, "tx_bytes") is long received)
                {
                    SetCounter(_netBytes, [.. labels, nic.Name, "receive"], received);
                }
                if (ReadNetCounter(nic.Tap, "rx_bytes") is long sent)
                {
                    SetCounter(_netBytes, [.. labels, nic.Name, "transmit"], sent);
                }
            }
        }
        foreach (var counter in new[] { _vmCpu, _diskOps, _diskBytes, _diskLatency, _diskErrors, _netBytes })
        {
            RemoveGone(counter, live, 3);
        }
        foreach (var gauge in new[] { _vmRss, _vmMemoryConfigured, _vmVcpus, _vmState })
        {
            RemoveGone(gauge, live, 3);
        }
    }

    private void CollectDatastores()
    {
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ds in _datastores.Snapshot())
        {
            string[] labels = [_host, ds.Name];
            live.Add(Key(labels));
            _dsHeartbeatAge.WithLabels(labels).Set(ds.HeartbeatAgeSeconds ?? double.NaN);
            _dsLeases.WithLabels(labels).Set(ds.LeasesHeld);
            _dsCapacity.WithLabels(labels).Set(ds.CapacityBytes);
            _dsFree.WithLabels(labels).Set(ds.FreeBytes);
            _dsFenced.WithLabels(labels).Set(ds.Fenced ? 1 : 0);
        }
        foreach (var collector in new[] { _dsHeartbeatAge, _dsLeases, _dsCapacity, _dsFree, _dsFenced })
        {
            RemoveGone(collector, live, 2);
        }
    }

    // A counter source that restarted (a new QEMU, a re-created NBD export) starts again from zero: drop the series
    // so Prometheus sees a counter reset rather than a counter stuck at its old maximum.
    private static void SetCounter(Counter counter, string[] labels, double value)
    {
        var child = counter.WithLabels(labels);
        if (value < child.Value)
        {
            counter.RemoveLabelled(labels);
            child = counter.WithLabels(labels);
        }
        child.IncTo(value);
    }

    private static void RemoveGone<TChild>(Collector<TChild> collector, HashSet<string> live, int keyLabels)
        where TChild : ChildBase
    {
        foreach (var labels in collector.GetAllLabelValues().ToList())
        {
            if (!live.Contains(Key(labels[..keyLabels])))
            {
                collector.RemoveLabelled(labels);
            }
        }
    }

    private static string Key(string[] labels) => string.Join('\u0001', labels);

    /// <summary>CPU seconds (user + system) and resident bytes of a process, from /proc; (0, 0) if it is gone.</summary>
    internal static (double CpuSeconds, long RssBytes) ReadProcess(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name may contain spaces and parentheses: fields are counted after its closing ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            long rss = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                    break;
                }
            }
            return (ticks / ClockTicksPerSecond, rss);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (0, 0);
        }
    }

    private static long? ReadNetCounter(string tap, string counter)
    {
        try
        {
            return long.Parse(File.ReadAllText($"/sys/class/net/{tap}/statistics/{counter}").Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }
}
