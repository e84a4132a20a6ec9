using k8s;
using Microsoft.Extensions.Logging;
using Prometheus;
using Vmk.Operator.Runtime.LeaderElection;
using Vmk.Operator.Runtime.Reconcile;

// vm-operator: the controller host. It elects a leader over a Lease and, while leading, runs the registered
// controllers. The reconcilers (VirtualMachine, Datastore, PortGroup, Host) are not written yet.
using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information));
var logger = loggerFactory.CreateLogger("Vmk.Operator");

IReadOnlyList<IController> controllers = [];
if (controllers.Count == 0)
{
    Console.Error.WriteLine("vm-operator: no controllers are registered yet (the VirtualMachine, Datastore, PortGroup and Host reconcilers "
        + "arrive with the node daemon); the controller runtime is in place but there is nothing to run. Use `vmctl vm run` for now.");
    return 2;
}

var kubeconfig = Environment.GetEnvironmentVariable("KUBECONFIG");
var config = KubernetesClientConfiguration.IsInCluster()
    ? KubernetesClientConfiguration.InClusterConfig()
    : KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig);
using var client = new Kubernetes(config);
using var metricServer = new MetricServer(port: int.TryParse(Environment.GetEnvironmentVariable("VMK_OPERATOR_METRICS_PORT"), out var p) ? p : 8080);
metricServer.Start();

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();

var host = new ControllerHost(client, new LeaderElectionOptions
{
    LeaseNamespace = Environment.GetEnvironmentVariable("VMK_OPERATOR_LEASE_NAMESPACE") ?? "vmk-system",
}, controllers, loggerFactory: loggerFactory);
logger.LogInformation("vm-operator {Identity} campaigning for leadership", host.Identity);
await host.RunAsync(stop.Token);
return 0;
