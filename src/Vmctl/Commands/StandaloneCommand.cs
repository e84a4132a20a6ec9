using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer;
using Vmk.ApiServer.Security;
using Vmk.Vmctl.Standalone;

namespace Vmk.Vmctl.Commands;

/// <summary>
/// <c>vmctl standalone</c>: a whole control plane on one machine. Starts the Kubernetes-API-compatible server with
/// the project's CRDs installed, one vmkerneld per simulated host (with --hosts N > 1 each in a network namespace on
/// a fabric bridge), and the operator; prints how to point kubectl at it; stops everything in order on Ctrl-C or
/// SIGTERM (operator, VMs, daemons, namespaces, API server). docs/standalone.md has the details.
/// </summary>
internal static class StandaloneCommand
{
    public static Command Create()
    {
        var command = new Command("standalone", "Run a single-machine control plane: API server with the VMkernel CRDs, N node daemons (vmkerneld) and the operator");
        var dataDir = new Option<string?>("--data-dir")
        {
            Description = "State directory: SQLite store, TLS material, token, kubeconfig, host state and logs (default: $XDG_DATA_HOME/vmk/standalone or ~/.local/share/vmk/standalone)",
        };
        var hosts = new Option<int>("--hosts")
        {
            Description = "Number of simulated hosts (node daemons) to start, 1-16; more than 1 puts each in a network namespace (needs root)",
            DefaultValueFactory = _ => 1,
        };
        var port = new Option<int>("--port")
        {
            Description = "HTTPS port of the API server on 127.0.0.1 (and the fabric address with --hosts > 1); 0 picks a free one",
            DefaultValueFactory = _ => 6443,
        };
        var crds = new Option<string?>("--crds")
        {
            Description = "Directory of CRD manifests to install (default: the copy beside vmctl, else the repository's crds/)",
        };
        var datastoreDir = new Option<string>("--datastore-dir")
        {
            Description = "Directory the file-backed datastores lie in (the default Datastore 'local' is local.vmfs there)",
            DefaultValueFactory = _ => "/var/lib/vmk/datastores",
        };
        var imageDir = new Option<string>("--image-dir")
        {
            Description = "Directory guest kernels and initrds may be booted from",
            DefaultValueFactory = _ => "/var/cache/vmkernel/guest",
        };
        var accelerator = new Option<string>("--accelerator")
        {
            Description = "The daemons' accelerator: auto, kvm or tcg",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("VMK_ACCELERATOR") ?? "auto",
        };
        var noDaemons = new Option<bool>("--api-only") { Description = "Start only the API server (no node daemons, no operator)" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Show every line the daemons and the operator log (default: warnings and worse; all of it is in DATA/logs/)" };
        command.Options.Add(dataDir);
        command.Options.Add(hosts);
        command.Options.Add(port);
        command.Options.Add(crds);
        command.Options.Add(datastoreDir);
        command.Options.Add(imageDir);
        command.Options.Add(accelerator);
        command.Options.Add(noDaemons);
        command.Options.Add(verbose);
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            var hostCount = r.GetValue(hosts);
            if (hostCount is < 1 or > 16)
            {
                await Console.Error.WriteLineAsync($"--hosts {hostCount}: must be between 1 and 16.");
                return 2;
            }
            var portValue = r.GetValue(port);
            if (portValue is < 0 or > 65535)
            {
                await Console.Error.WriteLineAsync($"--port {portValue}: not a TCP port.");
                return 2;
            }
            var crdDir = CrdLocator.Find(r.GetValue(crds));
            if (crdDir is null)
            {
                await Console.Error.WriteLineAsync("No CRD directory found: pass --crds DIR (the repository's crds/ directory).");
                return 2;
            }
            var apiOnly = r.GetValue(noDaemons);
            if (!apiOnly && hostCount > 1 && !Environment.IsPrivilegedProcess)
            {
                await Console.Error.WriteLineAsync($"--hosts {hostCount}: hosts are network namespaces, which only root can create; run with sudo (or use --hosts 1).");
                return 2;
            }
            ChildCommand? vmkerneld = null, vmOperator = null;
            if (!apiOnly)
            {
                vmkerneld = ExecutableLocator.Find("vmkerneld", "NodeDaemon", "VMK_VMKERNELD", out var searchedDaemon);
                vmOperator = ExecutableLocator.Find("vm-operator", "Operator", "VMK_OPERATOR", out var searchedOperator);
                if (vmkerneld is null || vmOperator is null)
                {
                    await Console.Error.WriteLineAsync((vmkerneld is null ? $"vmkerneld not found (looked at: {searchedDaemon}). " : "")
                        + (vmOperator is null ? $"vm-operator not found (looked at: {searchedOperator}). " : "")
                        + "Run scripts/build-vmctl.sh (it publishes vmctl, vmkerneld and vm-operator side by side), or set VMK_VMKERNELD / VMK_OPERATOR to the binaries, or pass --api-only.");
                    return 2;
                }
            }
            var dir = Path.GetFullPath(r.GetValue(dataDir) ?? DefaultDataDirectory());
            var layout = new StandaloneLayout(dir);
            var settings = new StandaloneSettings
            {
                DatastoreDirectory = Path.GetFullPath(r.GetValue(datastoreDir)!),
                ImageDirectory = Path.GetFullPath(r.GetValue(imageDir)!),
                Accelerator = r.GetValue(accelerator)!,
                Verbose = r.GetValue(verbose),
            };

            using var loggerFactory = LoggerFactory.Create(b => b
                .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
                .SetMinimumLevel(LogLevel.Information)
                .AddFilter("Microsoft", LogLevel.Warning)
                .AddFilter("Microsoft.Extensions.Hosting", LogLevel.None)
                .AddFilter("Grpc", LogLevel.Warning));
            var logger = loggerFactory.CreateLogger("Vmk.Vmctl.Standalone");

            // Ctrl-C and SIGTERM: during start-up they cancel it (what started is stopped); afterwards they end the wait.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });

            Fabric? fabric = null;
            ApiServerHost? api = null;
            StandaloneSupervisor? supervisor = null;
            try
            {
                IReadOnlyList<HostPlan> plan = [];
                if (!apiOnly && hostCount > 1)
                {
                    // The API server must listen on the fabric too, on the same port: a fixed one.
                    portValue = portValue == 0 ? StandaloneSupervisor.FreePort() : portValue;
                    fabric = await Fabric.CreateAsync(layout.ShortId, hostCount, grpcPort: 7443, metricsPort: 9464, logger, stop.Token);
                    plan = fabric.Hosts;
                }
                else if (!apiOnly)
                {
                    plan = [new HostPlan("host-1", null, IPAddress.Loopback, StandaloneSupervisor.FreePort(), StandaloneSupervisor.FreePort())];
                }
                api = await ApiServerHost.StartAsync(new ApiServerOptions
                {
                    DataDirectory = dir,
                    Port = portValue,
                    CrdDirectory = crdDir,
                    AdditionalBindAddresses = fabric is null ? [] : [fabric.Gateway],
                }, loggerFactory, stop.Token);
                if (!apiOnly)
                {
                    var daemonKubeconfig = api.KubeconfigPath;
                    if (fabric is not null)
                    {
                        daemonKubeconfig = layout.FabricKubeconfig;
                        KubeconfigWriter.Write(daemonKubeconfig, $"https://{fabric.Gateway}:{api.Port}", api.Credentials.CaPem, api.Credentials.Token);
                    }
                    StandalonePki.Ensure(layout, plan);
                    DefaultObjects.Ensure(api, settings.DatastoreDirectory, logger);
                    supervisor = await StandaloneSupervisor.StartAsync(layout, settings, plan, vmkerneld!, vmOperator!, api.Url, api.KubeconfigPath,
                        daemonKubeconfig, loggerFactory, stop.Token);
                }

                Console.WriteLine();
                Console.WriteLine($"VMkernel standalone control plane is running at {api.Url} (data: {dir}).");
                if (supervisor is not null)
                {
                    Console.WriteLine($"Hosts: {string.Join(", ", plan.Select(h => $"{h.Name} ({h.GrpcEndpoint}{(h.NetworkNamespace is null ? "" : ", netns " + h.NetworkNamespace)})"))}; logs in {layout.LogDirectory}.");
                }
                Console.WriteLine("Point kubectl at it:");
                Console.WriteLine($"  export KUBECONFIG={api.KubeconfigPath}");
                Console.WriteLine("  kubectl get crds");
                Console.WriteLine("  kubectl apply -f examples/ && kubectl get vmkernel");
                Console.WriteLine("Press Ctrl-C to stop.");
                try
                {
                    await Task.Delay(Timeout.Infinite, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
                Console.WriteLine("Stopping...");
                return 0;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync("Interrupted during start-up; stopping what was started.");
                return 130;
            }
            catch (Exception e) when (e is StandaloneException or IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException)
            {
                await Console.Error.WriteLineAsync($"vmctl standalone: {e.Message}");
                return 1;
            }
            finally
            {
                if (supervisor is not null)
                {
                    await supervisor.DisposeAsync();
                }
                if (fabric is not null)
                {
                    await fabric.DisposeAsync();
                }
                if (api is not null)
                {
                    await api.DisposeAsync();
                }
                Console.WriteLine("Stopped; state kept in " + dir);
            }
        });
        return command;
    }

    private static string DefaultDataDirectory()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        var root = string.IsNullOrEmpty(xdg)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share")
            : xdg;
        return Path.Combine(root, "vmk", "standalone");
    }
}
