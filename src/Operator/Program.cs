// vm-operator: parses the flags, connects to the API server and the daemons' CA, serves /metrics and
// /healthz+/readyz, and runs the controllers (OperatorControllers) while it holds the leader Lease.
using System.Runtime.InteropServices;
using k8s;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using Vmk.NodeDaemon.Client.Security;
using Vmk.Operator;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.LeaderElection;

OperatorOptions options;
try
{
    if (args.Contains("--help") || args.Contains("-h"))
    {
        Console.WriteLine(OperatorOptions.Usage);
        return 0;
    }
    options = OperatorOptions.Parse(args);
}
catch (OptionsException e)
{
    Console.Error.WriteLine($"vm-operator: {e.Message}");
    Console.Error.WriteLine(OperatorOptions.Usage);
    return 2;
}

using var loggerFactory = LoggerFactory.Create(b => b
    .AddSimpleConsole(o =>
    {
        o.SingleLine = true;
        o.TimestampFormat = "HH:mm:ss.fff ";
    })
    .SetMinimumLevel(options.LogLevel)
    .AddFilter("Microsoft.AspNetCore", LogLevel.Warning)
    .AddFilter("System.Net.Http", LogLevel.Warning)
    .AddFilter("Grpc", LogLevel.Warning));
var logger = loggerFactory.CreateLogger("Vmk.Operator");

KubernetesClientConfiguration config;
try
{
    config = options.Kubeconfig is { } path
        ? KubernetesClientConfiguration.BuildConfigFromConfigFile(path)
        : KubernetesClientConfiguration.IsInCluster()
            ? KubernetesClientConfiguration.InClusterConfig()
            : throw new OptionsException("no cluster to talk to: give --kubeconfig or set $KUBECONFIG (in a pod the service account is used)");
}
catch (Exception e) when (e is not OptionsException)
{
    Console.Error.WriteLine($"vm-operator: --kubeconfig '{options.Kubeconfig}' cannot be used: {e.Message}");
    return 2;
}
catch (OptionsException e)
{
    Console.Error.WriteLine($"vm-operator: {e.Message}");
    return 2;
}

System.Security.Cryptography.X509Certificates.X509Certificate2 ca, clientCertificate;
try
{
    (ca, clientCertificate) = TlsFiles.Load(options.TlsDirectory);
}
catch (Exception e) when (e is FileNotFoundException or IOException or System.Security.Cryptography.CryptographicException)
{
    Console.Error.WriteLine($"vm-operator: --tls-dir '{options.TlsDirectory}': {e.Message}");
    return 2;
}

using var client = new Kubernetes(config);
using var daemons = new DaemonConnectionPool(ca, clientCertificate, options.VmkerneldServerName, loggerFactory.CreateLogger<DaemonConnectionPool>());
Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressMeters = true, SuppressEventCounters = true, SuppressDebugMetrics = true });
var controllers = new OperatorControllers(client, daemons, loggerFactory, options.HostGracePeriod, options.Workers);
var identity = Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } pod
    ? pod
    : $"{Environment.MachineName}_{Environment.ProcessId}";
await using var host = options.LeaderElect
    ? new ControllerHost(client, new LeaderElectionOptions
    {
        LeaseNamespace = options.LeaderElectionNamespace,
        LeaseName = options.LeaderElectionName,
        Identity = identity,
        LeaseDuration = options.LeaseDuration,
        RenewDeadline = options.RenewDeadline,
        RetryPeriod = options.RetryPeriod,
    }, controllers.All, loggerFactory: loggerFactory)
    : null;

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.Services.AddSingleton(loggerFactory);
builder.WebHost.ConfigureKestrel(k =>
{
    k.Listen(options.MetricsListen);
    if (!options.HealthListen.Equals(options.MetricsListen))
    {
        k.Listen(options.HealthListen);
    }
});
var web = builder.Build();
int metricsPort = 0, healthPort = 0;
web.Use(async (context, next) =>
{
    var port = context.Connection.LocalPort;
    var path = context.Request.Path;
    if (path == "/metrics" && port == metricsPort)
    {
        await next(context);
        return;
    }
    if (port == healthPort && (path == "/healthz" || path == "/readyz"))
    {
        // Ready: standing by for the Lease, or leading with every informer synced.
        var ready = path == "/healthz" || (host is { IsLeading: false }) || controllers.Synced;
        context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        await context.Response.WriteAsync(ready ? "ok\n" : "informers not synced\n");
        return;
    }
    context.Response.StatusCode = StatusCodes.Status404NotFound;
});
web.MapMetrics("/metrics");
try
{
    await web.StartAsync();
}
catch (IOException e)
{
    Console.Error.WriteLine($"vm-operator: cannot listen (--metrics-listen {options.MetricsListen}, --health-listen {options.HealthListen}): {e.Message}");
    return 2;
}
var addresses = web.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).ToList();
metricsPort = options.MetricsListen.Port != 0 ? options.MetricsListen.Port : addresses[0].Port;
healthPort = options.HealthListen.Equals(options.MetricsListen) ? metricsPort
    : options.HealthListen.Port != 0 ? options.HealthListen.Port : addresses[^1].Port;
string Url(System.Net.IPEndPoint listen, int port) =>
    $"http://{(listen.Address.Equals(System.Net.IPAddress.Any) || listen.Address.Equals(System.Net.IPAddress.IPv6Any) ? "127.0.0.1" : listen.Address.ToString())}:{port}";

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
{
    c.Cancel = true;
    stop.Cancel();
});
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
{
    c.Cancel = true;
    stop.Cancel();
});

// Scripts and `vmctl standalone` wait for this line; with port 0 it is the only way to learn the ports.
Console.WriteLine($"vm-operator ready metrics={Url(options.MetricsListen, metricsPort)} health={Url(options.HealthListen, healthPort)}");
logger.LogInformation("vm-operator {Identity} started ({Mode})", identity,
    options.LeaderElect ? $"leader election on {options.LeaderElectionNamespace}/{options.LeaderElectionName}" : "no leader election");
if (host is not null)
{
    await host.RunAsync(stop.Token);
}
else
{
    await UnelectedHost.RunAsync(controllers.All, logger, stop.Token);
}
logger.LogInformation("vm-operator stopped");
await web.StopAsync();
return 0;
