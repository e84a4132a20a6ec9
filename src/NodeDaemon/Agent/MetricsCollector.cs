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
    private readonly Gauge _vmRunning;
    private readonly Gauge _vmMemory;
    private readonly Gauge _vmMemoryConfigured;
    private readonly Gauge _vmVcpus;
    private readonly Gauge _vmState;
    private readonly Counter _vmCrashes;
    private readonly Counter _diskReadBytes;
    private readonly Counter _diskWriteBytes;
    private readonly Counter _diskOps;
    private readonly Counter _diskLatency;
    private readonly Counter _diskErrors;
    private readonly Counter _netReceive;
    private readonly Counter _netTransmit;
    private readonly Gauge _hostVmsRunning;
    private readonly Gauge _hostCpuCapacity;
    private readonly Gauge _hostCpuAllocated;
    private readonly Gauge _hostCpuConfigured;
    private readonly Gauge _hostCpuPhysical;
    private readonly Gauge _hostMemoryCapacity;
    private readonly Gauge _hostMemoryAllocated;
    private readonly Gauge _hostMemoryConfigured;
    private readonly Gauge _hostMemoryPhysical;
    private readonly Gauge _hostVms;
    private readonly Gauge _accelerator;
    private readonly Gauge _dsHeartbeatAge;
    private readonly Gauge _leaseHeld;
    private readonly Counter _leaseTakeovers;
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
        // Names and labels are docs/packaging.md's metrics table, the contract the dashboards and alerts query.
        var f = Metrics.WithCustomRegistry(Metrics.DefaultRegistry);
        string[] disk = [.. VmLabels, "disk"];
        string[] nic = [.. VmLabels, "nic"];
        _vmCpu = f.CreateCounter("vmkernel_vm_cpu_seconds_total", "CPU time the VM's QEMU process used (all vCPUs and device emulation)", VmLabels);
        _vmRunning = f.CreateGauge("vmkernel_vm_running", "1 while the VM's QEMU runs on this host (running or paused), else 0", VmLabels);
        _vmMemory = f.CreateGauge("vmkernel_vm_memory_bytes", "Resident memory of the VM's QEMU process (guest RAM it touched plus QEMU's own)", VmLabels);
        _vmMemoryConfigured = f.CreateGauge("vmkernel_vm_memory_configured_bytes", "Guest RAM the VM is configured with", VmLabels);
        _vmVcpus = f.CreateGauge("vmkernel_vm_vcpus", "vCPUs the VM is configured with", VmLabels);
        _vmState = f.CreateGauge("vmkernel_vm_state", "1 for the VM's current power state", [.. VmLabels, "state"]);
        _vmCrashes = f.CreateCounter("vmkernel_vm_crashes_total", "QEMU exits that neither a command nor a guest power-off asked for (crash, external kill)", VmLabels);
        _diskReadBytes = f.CreateCounter("vmkernel_vm_disk_read_bytes_total", "Bytes the VM read from a virtual disk through the VMkernel's NBD server", disk);
        _diskWriteBytes = f.CreateCounter("vmkernel_vm_disk_write_bytes_total", "Bytes the VM wrote to a virtual disk through the VMkernel's NBD server", disk);
        _diskOps = f.CreateCounter("vmkernel_vm_disk_operations_total", "Disk requests served to the VM by the VMkernel's NBD server", [.. disk, "op"]);
        _diskLatency = f.CreateCounter("vmkernel_vm_disk_latency_seconds_total",
            "Summed service time of the VM's disk requests; divide its rate by the rate of vmkernel_vm_disk_operations_total for the mean latency", [.. disk, "op"]);
        _diskErrors = f.CreateCounter("vmkernel_vm_disk_errors_total", "Disk requests that failed", [.. disk, "op"]);
        _netReceive = f.CreateCounter("vmkernel_vm_network_receive_bytes_total", "Bytes the guest received on a NIC (its tap's transmit counter)", nic);
        _netTransmit = f.CreateCounter("vmkernel_vm_network_transmit_bytes_total", "Bytes the guest sent on a NIC (its tap's receive counter)", nic);
        _hostVmsRunning = f.CreateGauge("vmkernel_host_vms_running", "QEMU processes running on the host (running or paused VMs)", "host");
        _hostCpuCapacity = f.CreateGauge("vmkernel_host_cpu_capacity_cores", "Allocatable CPUs: the host's CPUs minus its reserve", "host");
        _hostCpuAllocated = f.CreateGauge("vmkernel_host_cpu_allocated_cores", "CPU reserved by powered-on VMs", "host");
        _hostCpuConfigured = f.CreateGauge("vmkernel_host_cpu_configured_cores", "vCPUs of powered-on VMs", "host");
        _hostCpuPhysical = f.CreateGauge("vmkernel_host_cpu_physical_cores", "The host's CPUs, before its reserve", "host");
        _hostMemoryCapacity = f.CreateGauge("vmkernel_host_memory_capacity_bytes", "Allocatable memory: the host's memory minus its reserve", "host");
        _hostMemoryAllocated = f.CreateGauge("vmkernel_host_memory_allocated_bytes", "Memory reserved by powered-on VMs", "host");
        _hostMemoryConfigured = f.CreateGauge("vmkernel_host_memory_configured_bytes", "Guest RAM of powered-on VMs", "host");
        _hostMemoryPhysical = f.CreateGauge("vmkernel_host_memory_physical_bytes", "The host's memory, before its reserve", "host");
        _hostVms = f.CreateGauge("vmkernel_host_vms", "VMs on the host by power state", "host", "state");
        _accelerator = f.CreateGauge("vmkernel_host_accelerator", "1 for the accelerator the host's VMs run on", "host", "mode");
        _dsHeartbeatAge = f.CreateGauge("vmkernel_datastore_heartbeat_age_seconds", "Age of this host's last successful heartbeat write on the datastore", "datastore", "host");
        _leaseHeld = f.CreateGauge("vmkernel_lease_held", "Disk leases this host holds on the datastore", "datastore", "host");
        _leaseTakeovers = f.CreateCounter("vmkernel_lease_takeovers_total", "Leases this host took over from a host whose heartbeat had stopped", "datastore", "host");
        _dsCapacity = f.CreateGauge("vmkernel_datastore_capacity_bytes", "Datastore capacity", "datastore", "host");
        _dsFree = f.CreateGauge("vmkernel_datastore_free_bytes", "Datastore free space", "datastore", "host");
        _dsFenced = f.CreateGauge("vmkernel_datastore_fenced", "1 when this host lost its heartbeat on the datastore and stopped writing", "datastore", "host");
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
        const double MillicoresPerCore = 1000;
        var (capacity, allocatable, allocated, configured) = (_allocation.Capacity, _allocation.Allocatable, _allocation.Allocated, _allocation.Configured);
        _hostCpuCapacity.WithLabels(_host).Set(allocatable.CpuMillicores / MillicoresPerCore);
        _hostCpuAllocated.WithLabels(_host).Set(allocated.CpuMillicores / MillicoresPerCore);
        _hostCpuConfigured.WithLabels(_host).Set(configured.CpuMillicores / MillicoresPerCore);
        _hostCpuPhysical.WithLabels(_host).Set(capacity.CpuMillicores / MillicoresPerCore);
        _hostMemoryCapacity.WithLabels(_host).Set(allocatable.MemoryBytes);
        _hostMemoryAllocated.WithLabels(_host).Set(allocated.MemoryBytes);
        _hostMemoryConfigured.WithLabels(_host).Set(configured.MemoryBytes);
        _hostMemoryPhysical.WithLabels(_host).Set(capacity.MemoryBytes);
        var vms = _vmkernel.Host.VirtualMachines;
        foreach (var state in Enum.GetValues<VmState>())
        {
            _hostVms.WithLabels(_host, state.ToString()).Set(vms.Count(vm => vm.State == state));
        }
        _hostVmsRunning.WithLabels(_host).Set(vms.Count(vm => vm.Pid is not null));
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
            SetCounter(_vmCrashes, labels, vm.Crashes);
            var pid = vm.Pid;
            _vmRunning.WithLabels(labels).Set(pid is null ? 0 : 1);
            if (pid is int p && ReadProcess(p) is var (cpuSeconds, rssBytes) && rssBytes > 0)
            {
                SetCounter(_vmCpu, labels, cpuSeconds);
                _vmMemory.WithLabels(labels).Set(rssBytes);
            }
            else
            {
                _vmMemory.WithLabels(labels).Set(0);
            }
            foreach (var d in vm.Spec.Disks)
            {
                if (!exports.TryGetValue($"{vm.Name}/{d.Name}", out var s))
                {
                    continue;
                }
                string[] dl = [.. labels, d.Name];
                SetCounter(_diskReadBytes, dl, s.Read.Bytes);
                SetCounter(_diskWriteBytes, dl, s.Write.Bytes);
                foreach (var (op, stats) in new[] { ("read", s.Read), ("write", s.Write), ("flush", s.Flush), ("trim", s.Trim), ("write_zeroes", s.WriteZeroes) })
                {
                    string[] l = [.. dl, op];
                    SetCounter(_diskOps, l, stats.Operations);
                    SetCounter(_diskLatency, l, stats.TotalLatency.TotalSeconds);
                    SetCounter(_diskErrors, l, stats.Errors);
                }
            }
            foreach (var n in vm.Spec.Nics)
            {
                // The tap's transmit is what the guest receives, and the other way round.
                if (ReadNetCounter(n.Tap, "tx_bytes") is long received)
                {
                    SetCounter(_netReceive, [.. labels, n.Name], received);
                }
                if (ReadNetCounter(n.Tap, "rx_bytes") is long sent)
                {
                    SetCounter(_netTransmit, [.. labels, n.Name], sent);
                }
            }
        }
        foreach (var counter in new[] { _vmCpu, _vmCrashes, _diskReadBytes, _diskWriteBytes, _diskOps, _diskLatency, _diskErrors, _netReceive, _netTransmit })
        {
            RemoveGone(counter, live, 3);
        }
        foreach (var gauge in new[] { _vmRunning, _vmMemory, _vmMemoryConfigured, _vmVcpus, _vmState })
        {
            RemoveGone(gauge, live, 3);
        }
    }

    private void CollectDatastores()
    {
        var takeovers = _vmkernel.Host.Storage.Datastores.ToDictionary(d => d.Name, d => d.Datastore.LeaseTakeovers, StringComparer.Ordinal);
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ds in _datastores.Snapshot())
        {
            string[] labels = [ds.Name, _host];
            live.Add(Key(labels));
            _dsHeartbeatAge.WithLabels(labels).Set(ds.HeartbeatAgeSeconds ?? double.NaN);
            _leaseHeld.WithLabels(labels).Set(ds.LeasesHeld);
            // A remount is a new datastore object whose count starts again: SetCounter turns that into a reset.
            SetCounter(_leaseTakeovers, labels, takeovers.GetValueOrDefault(ds.Name));
            _dsCapacity.WithLabels(labels).Set(ds.CapacityBytes);
            _dsFree.WithLabels(labels).Set(ds.FreeBytes);
            _dsFenced.WithLabels(labels).Set(ds.Fenced ? 1 : 0);
        }
        foreach (var gauge in new[] { _dsHeartbeatAge, _leaseHeld, _dsCapacity, _dsFree, _dsFenced })
        {
            RemoveGone(gauge, live, 2);
        }
        RemoveGone(_leaseTakeovers, live, 2);
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
