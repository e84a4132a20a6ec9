using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>/metrics scraped by a real Prometheus while a guest runs and writes to a datastore disk.</summary>
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
        await _client.Vms.DefineAsync(new DefineVmRequest
        {
            Spec = TestGuest.Spec("prom", s => s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds1", Disk = "seq" })),
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

        async Task<double> ValueAsync(string promql) =>
            (await Eventually.UntilAsync(() => _prometheus.QueryAsync(promql), r => r.Count > 0, Deadline, $"a result for {promql}"))[0].Value;

        var sel = $"namespace=\"tests\",vm=\"prom\",host=\"{_host.HostName}\"";
        Assert.True(await ValueAsync($"vmkernel_vm_cpu_seconds_total{{{sel}}}") > 0.5, "a booted TCG guest has used CPU");
        Assert.True(await ValueAsync($"vmkernel_vm_memory_resident_bytes{{{sel}}}") > 32 << 20);
        Assert.Equal(256L << 20, await ValueAsync($"vmkernel_vm_memory_configured_bytes{{{sel}}}"));
        Assert.Equal(1, await ValueAsync($"vmkernel_vm_state{{{sel},state=\"Running\"}}"));
        Assert.True(await ValueAsync($"vmkernel_vm_disk_operations_total{{{sel},disk=\"root\",op=\"write\"}}") >= 2);
        Assert.True(await ValueAsync($"vmkernel_vm_disk_bytes_total{{{sel},disk=\"root\",op=\"read\"}}") > 0);
        Assert.Equal(1, await ValueAsync($"vmkernel_host_vms{{host=\"{_host.HostName}\",state=\"Running\"}}"));
        Assert.Equal(1, await ValueAsync($"vmkernel_host_accelerator{{host=\"{_host.HostName}\",mode=\"tcg\"}}"));
        Assert.Equal(Environment.ProcessorCount * 1000, await ValueAsync($"vmkernel_host_cpu_millicores{{kind=\"capacity\"}}"));
        Assert.Equal(1, await ValueAsync($"vmkernel_datastore_leases{{datastore=\"ds1\"}}"));
        Assert.InRange(await ValueAsync($"vmkernel_datastore_heartbeat_age_seconds{{datastore=\"ds1\"}}"), 0, 10);
        Assert.True(await ValueAsync("sum(vmkernel_qmp_command_duration_seconds_count{command=\"stop\",outcome=\"ok\"})") >= 1);
        Assert.True(await ValueAsync("histogram_quantile(0.99, sum by (le) (vmkernel_qmp_command_duration_seconds_bucket))") > 0);

        // A deleted VM's series go with it.
        await _client.Vms.StopAsync(new VmRef { Name = "prom" });
        await _client.Vms.DeleteAsync(new VmRef { Name = "prom" });
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(_daemon.MetricsAddress, "/metrics"));
        Assert.DoesNotContain("vm=\"prom\"", text, StringComparison.Ordinal);
        Assert.Contains($"vmkernel_host_vms{{host=\"{_host.HostName}\",state=\"Running\"}} 0", text, StringComparison.Ordinal);
    }
}
