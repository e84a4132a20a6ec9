using Microsoft.Extensions.Logging.Abstractions;
using Vmk.NodeDaemon.Protos;
using Net = Vmk.Vmkernel.Network;

namespace Vmk.NodeDaemon.Tests;

/// <summary>
/// /metrics scraped by a real Prometheus while a guest runs, writes to a datastore disk and takes a DHCP lease on a
/// host-local port group; then its QEMU is killed behind the daemon's back. The names and labels asserted are
/// docs/packaging.md's metrics table, the contract the dashboards and alerts query.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class MetricsTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);
    private readonly TestHost _host = new();
    private DaemonProcess _daemon = null!;
    private DaemonClient _client = null!;
    private PrometheusServer? _prometheus;

    public async Task InitializeAsync()
    {
        _daemon = await _host.StartDaemonAsync();
        _client = _host.Connect(_daemon);
    }

    public async Task DisposeAsync()
    {
        if (_prometheus is not null)
        {
            await _prometheus.DisposeAsync();
        }
        _client.Dispose();
        // TestHost stops the daemon and QEMUs and removes the port groups left in the machine's namespace.
        await _host.DisposeAsync();
    }

    [Fact]
    public async Task Prometheus_scrapes_per_vm_and_per_host_metrics()
    {
        var device = Path.Combine(_host.DatastoreDirectory, "lun.img");
        await using (var f = File.Create(device))
        {
            f.SetLength(256L << 20);
        }
        await _client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = device, FormatIfBlank = true });
        await _client.Datastores.CreateDiskAsync(new CreateDiskRequest { Datastore = "ds1", Name = "seq", SizeBytes = 64L << 20 });
        var subnet = Random.Shared.Next(32, 47);
        var portGroup = $"pg-m{Guid.NewGuid().ToString("N")[..6]}";
        await _client.PortGroups.ApplyAsync(new PortGroupSpec
        {
            Name = portGroup,
            UplinkType = "none",
            Ipam = new Ipam { Cidr = $"10.{subnet}.78.0/24", Gateway = $"10.{subnet}.78.1", RangeStart = $"10.{subnet}.78.10", RangeEnd = $"10.{subnet}.78.99" },
        });
        await _client.Vms.DefineAsync(new DefineVmRequest
        {
            Spec = TestGuest.Spec("prom", s =>
            {
                s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "seq" });
                s.Nics.Add(new NicSpec { Name = "eth0", PortGroup = portGroup });
                s.Memory.ReservationBytes = 128L << 20;
                s.Cpu = new CpuSpec { ReservationMillicores = 100 };
            }),
        });
        await _client.Vms.StartAsync(new VmRef { Name = "prom" });
        using (var console = await ConsoleReader.AttachAsync(_client, "prom", replayHistory: true))
        {
            await console.WaitForLineAsync(l => l.StartsWith("VMK-DISK-SEQ 2", StringComparison.Ordinal), Boot);
        }
        await _client.Vms.PauseAsync(new VmRef { Name = "prom" });
        await _client.Vms.ResumeAsync(new VmRef { Name = "prom" });

        _prometheus = PrometheusServer.Start(_daemon.MetricsAddress, Path.Combine(_host.Root, "prom"));
        await Eventually.UntilAsync(_prometheus.TargetHealthAsync, h => h == "up", Deadline, "Prometheus to see vmkerneld up");

        async Task<double> ValueAsync(string promql, Func<double, bool>? until = null) =>
            (await Eventually.UntilAsync(() => _prometheus.QueryAsync(promql), r => r.Count > 0 && (until?.Invoke(r[0].Value) ?? true), Deadline, $"a result for {promql}"))[0].Value;

        var host = $"host=\"{_host.HostName}\"";
        var sel = $"namespace=\"tests\",vm=\"prom\",{host}";
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_running{{{sel}}}"));
        Assert.Equal(1, await ValueAsync($"vmkernel_host_vms_running{{{host}}}"));
        Assert.True(await ValueAsync($"vmkernel_vm_cpu_seconds_total{{{sel}}}") > 0.5, "a booted TCG guest has used CPU");
        Assert.True(await ValueAsync($"vmkernel_vm_memory_bytes{{{sel}}}") > 32 << 20);
        Assert.Equal(0, await ValueAsync($"vmkernel_vm_crashes_total{{{sel}}}"));
        Assert.Equal(256L << 20, await ValueAsync($"vmkernel_vm_memory_configured_bytes{{{sel}}}"));
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_state{{{sel},state=\"Running\"}}"));
        // The guest writes its sequence records (and read its disk at boot) through the VMkernel's NBD server.
        Assert.True(await ValueAsync($"vmkernel_vm_disk_write_bytes_total{{{sel},disk=\"root\"}}") >= 2 * 512);
        Assert.True(await ValueAsync($"vmkernel_vm_disk_read_bytes_total{{{sel},disk=\"root\"}}") > 0);
        Assert.True(await ValueAsync($"vmkernel_vm_disk_operations_total{{{sel},disk=\"root\",op=\"write\"}}") >= 2);
        // DHCP: the guest's DISCOVER/REQUEST out, dnsmasq's OFFER/ACK in.
        Assert.True(await ValueAsync($"vmkernel_vm_network_transmit_bytes_total{{{sel},nic=\"eth0\"}}", v => v > 0) > 0);
        Assert.True(await ValueAsync($"vmkernel_vm_network_receive_bytes_total{{{sel},nic=\"eth0\"}}", v => v > 0) > 0);
        Assert.Equal(1, await ValueAsync($"vmkernel_host_accelerator{{{host},mode=\"tcg\"}}"));
        Assert.Equal(Environment.ProcessorCount, await ValueAsync($"vmkernel_host_cpu_physical_cores{{{host}}}"));
        // The daemon's default reserve (250 millicores, 512 MiB) is kept back from what VMs may have.
        Assert.Equal(Environment.ProcessorCount - 0.25, await ValueAsync($"vmkernel_host_cpu_capacity_cores{{{host}}}"), 3);
        Assert.Equal(await ValueAsync($"vmkernel_host_memory_physical_bytes{{{host}}}") - (512L << 20), await ValueAsync($"vmkernel_host_memory_capacity_bytes{{{host}}}"));
        // What the running guest reserves.
        Assert.Equal(128L << 20, await ValueAsync($"vmkernel_host_memory_allocated_bytes{{{host}}}"));
        Assert.Equal(0.1, await ValueAsync($"vmkernel_host_cpu_allocated_cores{{{host}}}"), 3);
        Assert.Equal(1, await ValueAsync($"vmkernel_host_cpu_configured_cores{{{host}}}"));
        Assert.Equal(256L << 20, await ValueAsync($"vmkernel_host_memory_configured_bytes{{{host}}}"));
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_vcpus{{{sel}}}"));
        var ds = $"datastore=\"ds1\",{host}";
        Assert.Equal(1, await ValueAsync($"vmkernel_lease_held{{{ds}}}"));
        Assert.Equal(0, await ValueAsync($"vmkernel_lease_takeovers_total{{{ds}}}"));
        Assert.Equal(0, await ValueAsync($"vmkernel_datastore_fenced{{{ds}}}"));
        Assert.InRange(await ValueAsync($"vmkernel_datastore_capacity_bytes{{{ds}}}"), 128L << 20, 256L << 20);
        Assert.True(await ValueAsync($"vmkernel_datastore_free_bytes{{{ds}}}") < await ValueAsync($"vmkernel_datastore_capacity_bytes{{{ds}}}"));
        Assert.InRange(await ValueAsync($"vmkernel_datastore_heartbeat_age_seconds{{{ds}}}"), 0, 10);
        Assert.True(await ValueAsync($"sum(vmkernel_qmp_command_duration_seconds_count{{{host},command=\"stop\",outcome=\"ok\"}})") >= 1);
        Assert.True(await ValueAsync("histogram_quantile(0.99, sum by (le) (vmkernel_qmp_command_duration_seconds_bucket))") > 0);

        // QEMU killed behind the daemon's back is a crash: counted, and the VM no longer runs there.
        var qemu = Assert.Single(_host.QemuPids());
        using (var p = System.Diagnostics.Process.GetProcessById(qemu))
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_crashes_total{{{sel}}}", v => v == 1));
        Assert.Equal(0, await ValueAsync($"vmkernel_vm_running{{{sel}}}", v => v == 0));
        Assert.Equal(0, await ValueAsync($"vmkernel_host_vms_running{{{host}}}", v => v == 0));

        // Exits asked for through the API are not crashes.
        await _client.Vms.StartAsync(new VmRef { Name = "prom" });
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_running{{{sel}}}", v => v == 1));
        await _client.Vms.StopAsync(new VmRef { Name = "prom" });
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_state{{{sel},state=\"Stopped\"}}", v => v == 1));
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_crashes_total{{{sel}}}"));

        // A deleted VM's series go with it.
        await _client.Vms.DeleteAsync(new VmRef { Name = "prom" });
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(_daemon.MetricsAddress, "/metrics"));
        Assert.DoesNotContain("vm=\"prom\"", text, StringComparison.Ordinal);
        Assert.Contains($"vmkernel_host_vms_running{{{host}}} 0", text, StringComparison.Ordinal);
        await _client.PortGroups.RemoveAsync(new PortGroupRef { Name = portGroup });
    }
}
