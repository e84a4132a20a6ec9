using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Prometheus;
using Vmk.NodeDaemon.Client.Security;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.LeaderElection;
using Vmk.Operator.Runtime.Metrics;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>
/// A whole installation on this machine: the real API server in-process, real vmkerneld processes (hosts in the
/// root network namespace with their own state directories and ports, one shared datastore directory), the
/// mutual-TLS files as the chart makes them (the daemons' certificate names only the service name, never an
/// address, so the operator must use --vmkerneld-server-name), and the operator, in-process or as its own
/// process. Disposal kills every process it started and every QEMU started from its directory, then removes it.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    public const string ServerName = "vmkerneld.vmk-test.svc";
    private readonly List<ChildProcess> _processes = [];
    private readonly List<InProcessOperator> _operators = [];
    private readonly ILoggerFactory _logs;
    private DaemonConnectionPool? _clients;

    private TestCluster(ApiServerFixture api)
    {
        Api = api;
        Root = Path.Combine("/tmp", "vop-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(DatastoreDirectory);
        using var ca = CertificateAuthority.Create("vmkernel-test-ca");
        using var server = ca.IssueServer("vmkerneld", [ServerName], []);
        using var client = ca.IssueClient("vm-operator");
        Directory.CreateDirectory(DaemonTls);
        Directory.CreateDirectory(OperatorTls);
        CertificateAuthority.WritePem(Path.Combine(DaemonTls, "ca.crt"), ca.Certificate, null);
        CertificateAuthority.WritePem(Path.Combine(DaemonTls, "tls.crt"), server, Path.Combine(DaemonTls, "tls.key"));
        CertificateAuthority.WritePem(Path.Combine(OperatorTls, "ca.crt"), ca.Certificate, null);
        CertificateAuthority.WritePem(Path.Combine(OperatorTls, "tls.crt"), client, Path.Combine(OperatorTls, "tls.key"));
        _logs = LoggerFactory.Create(b => b.AddProvider(new CollectingLoggerProvider(Log)).SetMinimumLevel(LogLevel.Information));
    }

    public ApiServerFixture Api { get; }

    public string Root { get; }

    public string DatastoreDirectory => Path.Combine(Root, "ds");

    public string DaemonTls => Path.Combine(Root, "tls-d");

    public string OperatorTls => Path.Combine(Root, "tls-o");

    public Dictionary<string, TestNode> Hosts { get; } = [];

    /// <summary>What the in-process operators logged (shown when a test fails).</summary>
    public List<string> Log { get; } = [];

    public static async Task<TestCluster> StartAsync()
    {
        var api = new ApiServerFixture();
        await api.InitializeAsync();
        return new TestCluster(api);
    }

    public Kubernetes Client() => Api.Client();

    /// <summary>Starts a vmkerneld that reports Host <paramref name="name"/> at 127.0.0.1 and a port picked now.</summary>
    public async Task<TestNode> StartHostAsync(string name, double reportInterval = 1, params string[] extra)
    {
        var state = Path.Combine(Root, name);
        var port = Hosts.TryGetValue(name, out var previous) ? previous.Port : FreePort();
        string[] args =
        [
            "--state-dir", state,
            "--tls-dir", DaemonTls,
            "--grpc-listen", $"127.0.0.1:{port}",
            "--advertise-address", $"127.0.0.1:{port}",
            "--metrics-listen", "127.0.0.1:0",
            "--image-dirs", TestGuest.Directory,
            "--datastore-dirs", DatastoreDirectory,
            "--host-name", name,
            "--accelerator", "tcg",
            "--kubeconfig", Api.Host.KubeconfigPath,
            "--report-interval", reportInterval.ToString(System.Globalization.CultureInfo.InvariantCulture),
            .. extra,
        ];
        var process = await ChildProcess.StartAsync("vmkerneld.dll", args, "vmkerneld ready ");
        _processes.Add(process);
        var node = new TestNode(name, port, state, process);
        Hosts[name] = node;
        return node;
    }

    /// <summary>The operator's controllers in this process (no leader election), with their own metrics registry.</summary>
    public InProcessOperator StartOperator(TimeSpan? hostGrace = null)
    {
        var (ca, cert) = TlsFiles.Load(OperatorTls);
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var client = Api.Client();
        var pool = new DaemonConnectionPool(ca, cert, ServerName, _logs.CreateLogger<DaemonConnectionPool>());
        var controllers = new OperatorControllers(client, pool, _logs, hostGrace ?? TimeSpan.FromSeconds(10), 4, new RuntimeMetrics(registry), registry);
        var op = new InProcessOperator(client, pool, controllers, registry, _logs.CreateLogger("test"));
        _operators.Add(op);
        return op;
    }

    /// <summary>The vm-operator binary with the chart's flags, against this cluster.</summary>
    public async Task<ChildProcess> StartOperatorProcessAsync(params string[] extra)
    {
        string[] args =
        [
            "--kubeconfig", Api.Host.KubeconfigPath,
            "--tls-dir", OperatorTls,
            "--vmkerneld-server-name", ServerName,
            "--metrics-listen", "127.0.0.1:0",
            "--health-listen", "127.0.0.1:0",
            "--lease-duration=4s", "--renew-deadline=3s", "--retry-period=1s",
            "--leader-election-namespace", "vmk-system",
            "--host-grace-period", "10s",
            .. extra,
        ];
        var process = await ChildProcess.StartAsync("vm-operator.dll", args, "vm-operator ready ");
        _processes.Add(process);
        return process;
    }

    /// <summary>Typed clients of a host's daemon, as the operator dials them (mutual TLS, service name).</summary>
    public VmService.VmServiceClient Vms(TestNode node) => new(Pool.Channel(node.Name, $"127.0.0.1:{node.Port}"));

    public Grpc.Net.Client.GrpcChannel Channel(TestNode node) => Pool.Channel(node.Name, $"127.0.0.1:{node.Port}");

    public DatastoreService.DatastoreServiceClient Datastores(TestNode node) => new(Pool.Channel(node.Name, $"127.0.0.1:{node.Port}"));

    private DaemonConnectionPool Pool
    {
        get
        {
            if (_clients is null)
            {
                var (ca, cert) = TlsFiles.Load(OperatorTls);
                _clients = new DaemonConnectionPool(ca, cert, ServerName, _logs.CreateLogger<DaemonConnectionPool>());
            }
            return _clients;
        }
    }

    public async Task EnsureNamespaceAsync(string ns)
    {
        using var client = Client();
        try
        {
            await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } });
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
        }
    }

    /// <summary>A file-backed Datastore in the shared directory, formatted on first mount.</summary>
    public async Task<string> ApplyDatastoreAsync(string name, string size = "512Mi", string? path = null)
    {
        using var client = Client();
        path ??= Path.Combine(DatastoreDirectory, name + ".vmfs");
        var manifest = new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "Datastore",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = new JsonObject
            {
                ["device"] = new JsonObject { ["path"] = path, ["type"] = "file", ["size"] = size },
                ["format"] = new JsonObject { ["autoFormat"] = true },
            },
        };
        await client.CustomObjects.CreateClusterCustomObjectAsync(manifest, "vmkernel.io", "v1alpha1", "datastores");
        return path;
    }

    /// <summary>A host-local PortGroup (no uplink: the hosts share the machine's namespace) with DHCP on 10.SUBNET.88.0/24.</summary>
    public async Task ApplyPortGroupAsync(string name, int subnet)
    {
        using var client = Client();
        var manifest = new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "PortGroup",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = new JsonObject
            {
                ["uplink"] = new JsonObject { ["type"] = "none" },
                ["ipam"] = new JsonObject
                {
                    ["type"] = "DHCP",
                    ["subnet"] = $"10.{subnet}.88.0/24",
                    ["gateway"] = $"10.{subnet}.88.1",
                    ["rangeStart"] = $"10.{subnet}.88.10",
                    ["rangeEnd"] = $"10.{subnet}.88.99",
                },
            },
        };
        await client.CustomObjects.CreateClusterCustomObjectAsync(manifest, "vmkernel.io", "v1alpha1", "portgroups");
    }

    /// <summary>The test guest as a VirtualMachine manifest; <paramref name="change"/> edits its spec.</summary>
    public static JsonObject GuestManifest(string name, Action<JsonObject>? change = null)
    {
        var spec = new JsonObject
        {
            ["runPolicy"] = "Always",
            ["memory"] = new JsonObject { ["size"] = "256Mi" },
            ["boot"] = new JsonObject
            {
                ["kernel"] = TestGuest.Kernel,
                ["initrd"] = TestGuest.Initrd,
                ["cmdline"] = "console=ttyS0 tsc=reliable quiet",
            },
        };
        change?.Invoke(spec);
        return new JsonObject
        {
            ["apiVersion"] = "vmkernel.io/v1alpha1",
            ["kind"] = "VirtualMachine",
            ["metadata"] = new JsonObject { ["name"] = name },
            ["spec"] = spec,
        };
    }

    public async Task ApplyVmAsync(string ns, JsonObject manifest)
    {
        using var client = Client();
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(manifest, "vmkernel.io", "v1alpha1", ns, "virtualmachines");
    }

    public async Task<VirtualMachine?> GetVmAsync(string ns, string name)
    {
        using var client = Client();
        try
        {
            return await client.CustomObjects.GetNamespacedCustomObjectAsync<VirtualMachine>("vmkernel.io", "v1alpha1", ns, "virtualmachines", name);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<T?> GetClusterAsync<T>(string plural, string name)
        where T : CustomObject
    {
        using var client = Client();
        try
        {
            return await client.CustomObjects.GetClusterCustomObjectAsync<T>("vmkernel.io", "v1alpha1", plural, name);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<Corev1Event>> EventsAsync(string ns, string involvedName)
    {
        using var client = Client();
        var list = await client.CoreV1.ListNamespacedEventAsync(ns);
        return [.. list.Items.Where(e => e.InvolvedObject?.Name == involvedName)];
    }

    /// <summary>Pids of QEMU processes started from this cluster's directory.</summary>
    public IReadOnlyList<int> QemuPids() =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && ReadCmdline(pid) is var cmd && cmd.Contains(Root + "/", StringComparison.Ordinal) && cmd.Contains("qemu-system", StringComparison.Ordinal))
            .ToList();

    public static string Condition(CustomObject? obj, string type, string field) =>
        CustomObject.Str(Vmk.Operator.Controllers.Common.Conditions.Get(obj?.Status, type), field) ?? "";

    public async ValueTask DisposeAsync()
    {
        foreach (var op in _operators)
        {
            await op.DisposeAsync();
        }
        foreach (var p in _processes)
        {
            await p.DisposeAsync();
        }
        foreach (var pid in QemuPids())
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill();
                await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (ArgumentException)
            {
            }
        }
        // Whatever a failed test left in the machine's network namespace: taps, bridges, rules, dnsmasq; and the
        // cgroups of the VMs whose QEMUs were killed above (a daemon leaves them to the next one; none comes here).
        var cgroups = Vmk.Vmkernel.Resources.CgroupManagerFactory.Detect();
        foreach (var node in Hosts.Values)
        {
            if (!Directory.Exists(node.StateDirectory))
            {
                continue;
            }
            var vms = Path.Combine(node.StateDirectory, "vms");
            foreach (var vm in Directory.Exists(vms) ? Directory.EnumerateDirectories(vms) : [])
            {
                cgroups.Open(Vmk.Vmkernel.Resources.VmCgroupNames.For(Path.GetFileName(vm), node.Name))?.Delete();
            }
            var sw = Vmk.Vmkernel.Network.VSwitch.Open(node.StateDirectory, new Vmk.Vmkernel.Network.ProcessCommandRunner(), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            foreach (var record in sw.PortGroups)
            {
                foreach (var vm in record.Ports.Select(p => p.Vm).Distinct())
                {
                    await sw.RemoveTapsAsync(vm);
                }
                await sw.RemoveAsync(record.Spec.Name);
            }
        }
        _clients?.Dispose();
        await Api.DisposeAsync();
        _logs.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    public string Describe() => string.Join('\n', Log.TakeLast(80)) + "\n" + string.Join('\n', _processes.Select(p => p.Output.Length > 6000 ? p.Output[^6000..] : p.Output));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string ReadCmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
