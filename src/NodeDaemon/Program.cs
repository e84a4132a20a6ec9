// vmkerneld: the per-host daemon. Wires configuration, the VMkernel, the gRPC API (HTTP/2, mutual TLS), the Host
// object reporter and /metrics (plain HTTP on its own port); the work happens in Services/ and Agent/.
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Prometheus;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Client.Security;
using Vmk.NodeDaemon.Configuration;
using Vmk.NodeDaemon.Services;

if (args.Length > 0 && args[0] == "certificates")
{
    return CertificatesCommand.Run(args[1..]);
}
if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(DaemonOptions.Usage());
    return 0;
}

var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddEnvironmentVariables("VMKERNELD_");
builder.Configuration.AddCommandLine(args, DaemonOptions.SwitchMappings.ToDictionary());
var section = builder.Configuration.GetSection(DaemonOptions.Section);
builder.Services.Configure<DaemonOptions>(section);
var options = section.Get<DaemonOptions>() ?? new DaemonOptions();

using var startupLogs = LoggerFactory.Create(l => l.AddConsole());
System.Security.Cryptography.X509Certificates.X509Certificate2 ca, serverCertificate;
System.Net.IPEndPoint grpcEndpoint, metricsEndpoint;
try
{
    (ca, serverCertificate) = TlsFiles.Load(options.TlsDirectory);
    grpcEndpoint = DaemonOptions.ParseEndpoint(options.GrpcListen, "--grpc-listen");
    metricsEndpoint = DaemonOptions.ParseEndpoint(options.MetricsListen, "--metrics-listen");
}
catch (Exception e) when (e is IOException or ArgumentException or FormatException or System.Security.Cryptography.CryptographicException)
{
    // A setting the daemon cannot use: its own words and exit code 2, not a crash with a stack trace.
    Console.Error.WriteLine($"vmkerneld: {e.Message}");
    return 2;
}
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.Listen(grpcEndpoint, listen =>
    {
        listen.Protocols = HttpProtocols.Http2;
        listen.UseHttps(MutualTls.ServerOptions(ca, serverCertificate, startupLogs.CreateLogger("Vmk.NodeDaemon.MutualTls")));
    });
    kestrel.Listen(metricsEndpoint, listen => listen.Protocols = HttpProtocols.Http1);
});

builder.Services.AddSingleton<VmEventHub>();
builder.Services.AddSingleton<VmkernelRunner>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<VmkernelRunner>());
builder.Services.AddSingleton<VmOwnerStore>();
builder.Services.AddSingleton<PathPolicy>();
builder.Services.AddSingleton<HostAllocation>();
builder.Services.AddSingleton<DatastoreObserver>();
builder.Services.AddHostedService<HostReporter>();
builder.Services.AddHostedService<GuestAddressWatcher>();
builder.Services.AddSingleton<MetricsCollector>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<MetricsCollector>());
// Only what the daemon defines plus the process's own figures: no .NET meter or event-counter series.
Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressMeters = true, SuppressEventCounters = true, SuppressDebugMetrics = true });
builder.Services.AddSingleton<VmSpecConverter>();
builder.Services.AddGrpc(grpc =>
{
    grpc.Interceptors.Add<ErrorMappingInterceptor>();
    grpc.EnableDetailedErrors = false;
});

var app = builder.Build();

// One port, one purpose: the TLS port serves only gRPC, the plain port only /metrics.
app.Use(async (context, next) =>
{
    if (context.Request.IsHttps == (context.Request.Path == "/metrics"))
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return;
    }
    await next(context);
});
app.MapGrpcService<HostApi>();
app.MapGrpcService<VmApi>();
app.MapGrpcService<DatastoreApi>();
app.MapGrpcService<PortGroupApi>();
app.MapGrpcService<MigrationApi>();
app.MapMetrics("/metrics");

try
{
    await app.StartAsync();
}
catch (Exception e) when (e is IOException or Vmk.Vmkernel.VmkernelException or UnauthorizedAccessException or InvalidOperationException)
{
    // The state directory held by another vmkerneld, a port in use, an unusable setting: said once, exit 1.
    Console.Error.WriteLine($"vmkerneld: cannot start: {e.Message}");
    return 1;
}
var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
// Scripts and tests wait for this line; with port 0 it is the only way to learn the ports.
Console.WriteLine($"vmkerneld ready grpc={addresses.First(a => a.StartsWith("https:", StringComparison.Ordinal))} metrics={addresses.First(a => a.StartsWith("http:", StringComparison.Ordinal))}");
await app.WaitForShutdownAsync();
return 0;
