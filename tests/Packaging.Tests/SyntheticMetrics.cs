using System.Globalization;
using System.Text;

namespace Vmk.Packaging.Tests;

/// <summary>
/// Samples of every metric family in the contract of docs/packaging.md, in OpenMetrics text with timestamps, for
/// `promtool tsdb create-blocks-from openmetrics`. A stand-in for scraping the operator and vmkerneld: neither
/// exports these families yet (they are written in parallel), so the dashboards are checked against the names
/// and labels the contract fixes. Three hosts' worth of series, one sample every 15 s.
/// </summary>
public static class SyntheticMetrics
{
    public const string Gauge = "gauge";
    public const string Counter = "counter";
    public const string Histogram = "histogram";

    /// <summary>Family name, kind, and the label sets of its series.</summary>
    public static readonly IReadOnlyList<(string Name, string Kind, string[] Series)> Families = Build();

    private static List<(string, string, string[])> Build()
    {
        string[] hosts = ["esx1", "esx2"];
        string[] vms = ["namespace=\"default\",vm=\"web\",host=\"esx1\"", "namespace=\"prod\",vm=\"db\",host=\"esx2\""];
        var perHost = hosts.Select(h => $"host=\"{h}\"").ToArray();
        var perDatastoreHost = hosts.Select(h => $"datastore=\"ds1\",host=\"{h}\"").ToArray();
        return
        [
            ("vmkernel_host_heartbeat_age_seconds", Gauge, perHost),
            ("vmkernel_host_vms_running", Gauge, perHost),
            ("vmkernel_host_cpu_capacity_cores", Gauge, perHost),
            ("vmkernel_host_cpu_allocated_cores", Gauge, perHost),
            ("vmkernel_host_memory_capacity_bytes", Gauge, perHost),
            ("vmkernel_host_memory_allocated_bytes", Gauge, perHost),
            ("vmkernel_virtualmachines", Gauge, ["phase=\"Running\"", "phase=\"Stopped\"", "phase=\"Migrating\""]),
            ("vmkernel_datastore_capacity_bytes", Gauge, perDatastoreHost),
            ("vmkernel_datastore_free_bytes", Gauge, perDatastoreHost),
            ("vmkernel_datastore_heartbeat_age_seconds", Gauge, perDatastoreHost),
            ("vmkernel_datastore_fenced", Gauge, perDatastoreHost),
            ("vmkernel_lease_held", Gauge, perDatastoreHost),
            ("vmkernel_lease_takeovers_total", Counter, perDatastoreHost),
            ("vmkernel_vm_running", Gauge, vms),
            ("vmkernel_vm_memory_bytes", Gauge, vms),
            ("vmkernel_vm_cpu_seconds_total", Counter, vms),
            ("vmkernel_vm_crashes_total", Counter, vms),
            ("vmkernel_vm_disk_read_bytes_total", Counter, vms.Select(v => v + ",disk=\"root\"").ToArray()),
            ("vmkernel_vm_disk_write_bytes_total", Counter, vms.Select(v => v + ",disk=\"root\"").ToArray()),
            ("vmkernel_vm_network_receive_bytes_total", Counter, vms.Select(v => v + ",nic=\"eth0\"").ToArray()),
            ("vmkernel_vm_network_transmit_bytes_total", Counter, vms.Select(v => v + ",nic=\"eth0\"").ToArray()),
            ("vmkernel_qmp_command_duration_seconds", Histogram, hosts.Select(h => $"host=\"{h}\",command=\"query-status\",outcome=\"ok\"").ToArray()),
            ("vmkernel_migration_total", Counter, ["result=\"succeeded\"", "result=\"failed\"", "result=\"cancelled\""]),
            ("vmkernel_migrations_in_progress", Gauge, [""]),
            ("vmkernel_migration_downtime_seconds", Histogram, [""]),
            ("vmkernel_migration_duration_seconds", Histogram, [""]),
            ("vmkernel_migration_transferred_bytes_total", Counter, [""]),
            ("controller_runtime_reconcile_total", Counter, ["controller=\"virtualmachine\",result=\"success\"", "controller=\"virtualmachine\",result=\"requeue\"", "controller=\"datastore\",result=\"error\""]),
            ("controller_runtime_reconcile_errors_total", Counter, ["controller=\"datastore\""]),
            ("controller_runtime_reconcile_time_seconds", Histogram, ["controller=\"virtualmachine\""]),
            ("workqueue_depth", Gauge, ["name=\"virtualmachine\"", "name=\"datastore\""]),
            ("leader_election_master_status", Gauge, ["name=\"vm-operator\",pod=\"vm-operator-a\"", "name=\"vm-operator\",pod=\"vm-operator-b\""]),
        ];
    }

    private static readonly double[] Buckets = [0.005, 0.05, 0.5, 5];

    /// <summary>OpenMetrics text: <paramref name="points"/> samples per series, 15 s apart, the last at <paramref name="end"/>.</summary>
    public static string OpenMetrics(DateTimeOffset end, int points)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        foreach (var (name, kind, series) in Families)
        {
            for (var s = 0; s < series.Length; s++)
            {
                var labels = series[s];
                for (var i = 0; i < points; i++)
                {
                    var t = (end.ToUnixTimeMilliseconds() - (points - 1 - i) * 15_000L) / 1000.0;
                    var ts = t.ToString("0.###", c);
                    if (kind == Histogram)
                    {
                        var count = (i + 1) * (s + 2);
                        for (var b = 0; b < Buckets.Length; b++)
                        {
                            sb.Append(c, $"{name}_bucket{{{Join(labels, $"le=\"{Buckets[b].ToString(c)}\"")}}} {count * (b + 1) / Buckets.Length} {ts}\n");
                        }
                        sb.Append(c, $"{name}_bucket{{{Join(labels, "le=\"+Inf\"")}}} {count} {ts}\n");
                        sb.Append(c, $"{name}_sum{{{labels}}} {count * 0.1} {ts}\n");
                        sb.Append(c, $"{name}_count{{{labels}}} {count} {ts}\n");
                    }
                    else
                    {
                        // Counters grow; gauges sit at a plausible level (ages and flags small, sizes large).
                        var value = kind == Counter ? (i + 1) * (s + 1) : name.EndsWith("_bytes", StringComparison.Ordinal) ? (s + 1) * 1e9 : name.EndsWith("_cores", StringComparison.Ordinal) ? 8 - s : s + 1;
                        sb.Append(c, $"{name}{{{labels}}} {value} {ts}\n");
                    }
                }
            }
        }
        sb.Append("# EOF\n");
        return sb.ToString();
    }

    private static string Join(string a, string b) => a.Length == 0 ? b : a + "," + b;
}
