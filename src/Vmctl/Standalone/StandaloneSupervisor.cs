using System.Text.Json;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Protos;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// The children of a standalone run: one vmkerneld per host and one vm-operator, started in that order (the operator
/// finds the daemons through their Host objects) and stopped in reverse. Both kinds are restarted when they crash,
/// as a DaemonSet and a Deployment would be. Stopping also powers off the VMs the daemons run (the daemons
/// themselves leave VMs running across their own restarts) and takes their port groups down, so a stopped
/// standalone leaves no QEMU, bridge or DHCP server behind;
/// the VirtualMachine objects stay, and the next start boots them again as their runPolicy says.
/// </summary>
internal sealed class StandaloneSupervisor : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(30);
    private readonly StandaloneLayout _layout;
    private readonly IReadOnlyList<HostPlan> _hosts;
    private readonly List<SupervisedProcess> _daemons = [];
    private readonly ILogger _logger;
    private readonly string _apiUrl;
    private readonly List<(HostPlan Host, string Bridge, string Uplink)> _leftDevices = [];
    private SupervisedProcess? _operator;

    private StandaloneSupervisor(StandaloneLayout layout, IReadOnlyList<HostPlan> hosts, string apiUrl, ILogger logger)
    {
        _layout = layout;
        _hosts = hosts;
        _apiUrl = apiUrl;
        _logger = logger;
    }

    public SupervisedProcess? Operator => _operator;

    public IReadOnlyList<SupervisedProcess> Daemons => _daemons;

    public static async Task<StandaloneSupervisor> StartAsync(
        StandaloneLayout layout, StandaloneSettings settings, IReadOnlyList<HostPlan> hosts, ChildCommand vmkerneld, ChildCommand vmOperator,
        string apiUrl, string operatorKubeconfig, string daemonKubeconfig, ILoggerFactory loggerFactory, CancellationToken ct)
    {
        var logger = loggerFactory.CreateLogger("Vmk.Vmctl.Standalone");
        var supervisor = new StandaloneSupervisor(layout, hosts, apiUrl, logger);
        try
        {
            Directory.CreateDirectory(settings.DatastoreDirectory);
            foreach (var host in hosts)
            {
                var state = layout.HostStateDirectory(host.Name);
                Directory.CreateDirectory(state);
                var listenAddress = host.NetworkNamespace is null ? "127.0.0.1" : host.Address.ToString();
                var command = (vmkerneld with { NetworkNamespace = host.NetworkNamespace }).With(
                    "--state-dir", state,
                    "--grpc-listen", $"{listenAddress}:{host.GrpcPort}",
                    "--metrics-listen", $"{listenAddress}:{host.MetricsPort}",
                    "--advertise-address", host.GrpcEndpoint,
                    "--tls-dir", layout.HostTlsDirectory(host.Name),
                    "--image-dirs", settings.ImageDirectory,
                    "--datastore-dirs", settings.DatastoreDirectory,
                    "--host-name", host.Name,
                    "--kubeconfig", daemonKubeconfig,
                    "--accelerator", settings.Accelerator,
                    // The VXLAN endpoint: the fabric address between namespaces; with one host, loopback (there are
                    // no peers, and the machine's own uplink may be too narrow for the port group's MTU).
                    "--overlay-address", host.Address.ToString());
                var daemon = new SupervisedProcess($"vmkerneld/{host.Name}", command, "vmkerneld ready ", layout.LogPath($"vmkerneld-{host.Name}"),
                    logger, settings.Verbose, restart: true);
                daemon.Ready += _ => supervisor.WriteStatus();
                lock (supervisor._daemons)
                {
                    supervisor._daemons.Add(daemon);
                }
                daemon.Start();
            }
            foreach (var daemon in supervisor._daemons)
            {
                await daemon.WaitReadyAsync(settings.ReadyTimeout, ct);
            }
            logger.LogInformation("{Count} node daemon(s) ready: {Hosts}", hosts.Count, string.Join(", ", hosts.Select(h => $"{h.Name}@{h.GrpcEndpoint}")));

            var operatorPorts = (Metrics: FreePort(), Health: FreePort());
            var op = vmOperator.With(
                "--kubeconfig", operatorKubeconfig,
                "--leader-election-namespace", "kube-system",
                "--metrics-listen", $"127.0.0.1:{operatorPorts.Metrics}",
                "--health-listen", $"127.0.0.1:{operatorPorts.Health}",
                "--tls-dir", layout.OperatorTlsDirectory,
                "--vmkerneld-server-name", StandalonePki.DaemonServerName);
            supervisor._operator = new SupervisedProcess("vm-operator", op, "vm-operator ready ", layout.LogPath("vm-operator"), logger, settings.Verbose, restart: true);
            supervisor._operator.Ready += _ => supervisor.WriteStatus();
            supervisor._operator.Start();
            try
            {
                await supervisor._operator.WaitReadyAsync(settings.ReadyTimeout, ct);
            }
            catch (StandaloneException e)
            {
                // The API server and the daemons are useful without it (kubectl, vmctl); keep them, keep retrying it.
                logger.LogError("{Error}\nThe API server and the node daemons keep running; vm-operator is restarted with back-off.", e.Message);
            }
            supervisor.WriteStatus();
            return supervisor;
        }
        catch
        {
            await supervisor.DisposeAsync();
            throw;
        }
    }

    /// <summary>Operator first (so nothing restarts the VMs), then the VMs, then the daemons.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_operator is not null)
        {
            await _operator.DisposeAsync();
        }
        await Task.WhenAll(_hosts.Zip(_daemons).Select(p => PowerOffVmsAsync(p.First, p.Second)));
        await Task.WhenAll(_hosts.Zip(_daemons).Select(p => RemovePortGroupsAsync(p.First, p.Second)));
        await Task.WhenAll(_daemons.Select(d => d.DisposeAsync().AsTask()));
        await RemoveLeftoversAsync();
        File.Delete(_layout.StatusFile);
    }

    private async Task PowerOffVmsAsync(HostPlan host, SupervisedProcess daemon)
    {
        if (daemon.Pid is null)
        {
            return;
        }
        try
        {
            using var channel = NodeDaemonChannel.Create(new Uri($"https://{host.GrpcEndpoint}"), _layout.OperatorTlsDirectory, "tls.crt", "tls.key");
            var vms = new VmService.VmServiceClient(channel);
            var list = await vms.ListAsync(new ListVmsRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            foreach (var vm in list.Vms.Where(v => v.Status.State is VmState.Running or VmState.Starting or VmState.Paused or VmState.Stopping))
            {
                _logger.LogInformation("Powering off VM {Vm} on {Host}", vm.Spec.Name, host.Name);
                try
                {
                    await vms.StopAsync(new VmRef { Name = vm.Spec.Name }, deadline: DateTime.UtcNow.Add(StopGrace));
                }
                catch (RpcException e)
                {
                    _logger.LogWarning("Could not power off VM {Vm} on {Host}: {Status} {Detail}", vm.Spec.Name, host.Name, e.StatusCode, e.Status.Detail);
                }
            }
        }
        catch (Exception e) when (e is RpcException or IOException or System.Security.Cryptography.CryptographicException)
        {
            _logger.LogWarning("Could not list the VMs on {Host} to power them off: {Error}", host.Name, e.Message);
        }
    }

    /// <summary>
    /// Takes down the port groups (bridges, VXLAN devices, DHCP servers) the operator realized on a host: in the root
    /// namespace nothing else would remove them, and they would outlive the run. The operator realizes them again
    /// on the next start.
    /// </summary>
    private async Task RemovePortGroupsAsync(HostPlan host, SupervisedProcess daemon)
    {
        if (daemon.Pid is null)
        {
            return;
        }
        try
        {
            using var channel = NodeDaemonChannel.Create(new Uri($"https://{host.GrpcEndpoint}"), _layout.OperatorTlsDirectory, "tls.crt", "tls.key");
            var portGroups = new PortGroupService.PortGroupServiceClient(channel);
            var list = await portGroups.ListAsync(new ListPortGroupsRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            foreach (var pg in list.PortGroups)
            {
                try
                {
                    await portGroups.RemoveAsync(new PortGroupRef { Name = pg.Name }, deadline: DateTime.UtcNow.AddSeconds(30));
                }
                catch (RpcException e)
                {
                    // Typically: powered-off VMs still hold ports on it. Its devices go once the daemon has stopped.
                    _logger.LogInformation("Port group {PortGroup} on {Host} not removed by the daemon ({Detail}); removing its devices after the daemon stops", pg.Name, host.Name, e.Status.Detail);
                    lock (_leftDevices)
                    {
                        _leftDevices.Add((host, pg.Bridge, pg.Uplink));
                    }
                }
            }
        }
        catch (Exception e) when (e is RpcException or IOException or System.Security.Cryptography.CryptographicException)
        {
            _logger.LogWarning("Could not list the port groups on {Host} to take them down: {Error}", host.Name, e.Message);
        }
    }

    /// <summary>
    /// After the daemons stopped: the devices of port groups they could not remove, and what they started that
    /// outlives them (dnsmasq for a port group's DHCP, whose command line names the host's state directory).
    /// Hosts in network namespaces need none of this: the namespace goes, and the fabric kills what is in it.
    /// </summary>
    private async Task RemoveLeftoversAsync()
    {
        foreach (var (host, bridge, uplink) in _leftDevices.Where(d => d.Host.NetworkNamespace is null))
        {
            foreach (var device in new[] { uplink, bridge }.Where(d => !string.IsNullOrEmpty(d)))
            {
                await Fabric.RunAsync(["ip", "link", "del", device], CancellationToken.None, check: false);
            }
        }
        foreach (var host in _hosts.Where(h => h.NetworkNamespace is null))
        {
            var state = _layout.HostStateDirectory(host.Name) + "/";
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                try
                {
                    // Only what a daemon starts (a user's `tail -f` of a console log names the directory too).
                    if (int.TryParse(Path.GetFileName(dir), out var pid) && pid != Environment.ProcessId
                        && IsDaemonChild(File.ReadAllText(Path.Combine(dir, "comm")).Trim())
                        && File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains(state, StringComparison.Ordinal))
                    {
                        _logger.LogInformation("Stopping process {Pid} left by the daemon of {Host}", pid, host.Name);
                        System.Diagnostics.Process.GetProcessById(pid).Kill();
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
                {
                }
            }
        }
    }

    /// <summary>dnsmasq of a port group, or a QEMU (which renames its process "vmk-NAME" through -name process=).</summary>
    private static bool IsDaemonChild(string comm) =>
        comm == "dnsmasq" || comm.StartsWith("qemu-system", StringComparison.Ordinal) || comm.StartsWith("vmk-", StringComparison.Ordinal);

    /// <summary>standalone.json: what runs where, for scripts, tests and benchmarks (Prometheus targets, console logs).</summary>
    public void WriteStatus()
    {
        // Called from the children's output threads while daemons may still be added: one writer at a time, on a snapshot.
        lock (_daemons)
        {
            try
            {
                WriteStatusLocked();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning("Could not write {File}: {Error}", _layout.StatusFile, e.Message);
            }
        }
    }

    private void WriteStatusLocked()
    {
        var status = new
        {
            apiServer = _apiUrl,
            kubeconfig = Path.Combine(_layout.DataDirectory, "kubeconfig"),
            vmctlPid = Environment.ProcessId,
            @operator = _operator is null ? null : new
            {
                pid = _operator.Pid,
                starts = _operator.Starts,
                log = _operator.LogPath,
                metrics = Field(_operator.ReadyLine, "metrics="),
                health = Field(_operator.ReadyLine, "health="),
            },
            hosts = _hosts.Zip(_daemons).Select(p => new
            {
                name = p.First.Name,
                netns = p.First.NetworkNamespace,
                address = p.First.Address.ToString(),
                grpc = p.First.GrpcEndpoint,
                metrics = $"http://{p.First.MetricsEndpoint}/metrics",
                stateDir = _layout.HostStateDirectory(p.First.Name),
                pid = p.Second.Pid,
                starts = p.Second.Starts,
                log = p.Second.LogPath,
            }).ToList(),
        };
        var tmp = _layout.StatusFile + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(status, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, _layout.StatusFile, overwrite: true);
    }

    private static string? Field(string? line, string prefix) =>
        line?.Split(' ').FirstOrDefault(p => p.StartsWith(prefix, StringComparison.Ordinal))?[prefix.Length..];

    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Any, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
