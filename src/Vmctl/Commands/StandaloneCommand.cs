using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Vmk.ApiServer;

namespace Vmk.Vmctl.Commands;

/// <summary>
/// <c>vmctl standalone</c>: a whole control plane on one machine. Starts the Kubernetes-API-compatible server with
/// the project's CRDs installed, then the operator and the node daemons (once they exist), prints how to point
/// kubectl at it, and stops cleanly on Ctrl-C.
/// </summary>
internal static class StandaloneCommand
{
    public static Command Create()
    {
        var command = new Command("standalone", "Run a single-machine control plane: a Kubernetes-API-compatible server with the VMkernel CRDs");
        var dataDir = new Option<string?>("--data-dir")
        {
            Description = "State directory: SQLite store, TLS material, token and kubeconfig (default: $XDG_DATA_HOME/vmk/standalone or ~/.local/share/vmk/standalone)",
        };
        var hosts = new Option<int>("--hosts")
        {
            Description = "Number of simulated hosts (node daemons) to start, 1-16",
            DefaultValueFactory = _ => 1,
        };
        var port = new Option<int>("--port")
        {
            Description = "HTTPS port of the API server on 127.0.0.1 (0 picks a free one)",
            DefaultValueFactory = _ => 6443,
        };
        var crds = new Option<string?>("--crds")
        {
            Description = "Directory of CRD manifests to install (default: the copy beside vmctl, else the repository's crds/)",
        };
        command.Options.Add(dataDir);
        command.Options.Add(hosts);
        command.Options.Add(port);
        command.Options.Add(crds);
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
            var dir = Path.GetFullPath(r.GetValue(dataDir) ?? DefaultDataDirectory());

            using var loggerFactory = LoggerFactory.Create(b => b
                .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; })
                .SetMinimumLevel(LogLevel.Information)
                .AddFilter("Microsoft", LogLevel.Warning)
                .AddFilter("Microsoft.Extensions.Hosting", LogLevel.None));
            ApiServerHost api;
            try
            {
                api = await ApiServerHost.StartAsync(new ApiServerOptions { DataDirectory = dir, Port = portValue, CrdDirectory = crdDir }, loggerFactory, ct);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"Cannot start the API server: {e.Message}");
                return 1;
            }
            await using (api)
            {
                var components = await StartOperatorAndNodeDaemonsAsync(api, hostCount, loggerFactory, ct);
                Console.WriteLine();
                Console.WriteLine($"VMkernel standalone control plane is running at {api.Url} (data: {dir}).");
                Console.WriteLine("Point kubectl at it:");
                Console.WriteLine($"  export KUBECONFIG={api.KubeconfigPath}");
                Console.WriteLine("  kubectl get crds");
                Console.WriteLine("  kubectl apply -f examples/ && kubectl get vmkernel");
                Console.WriteLine("Press Ctrl-C to stop.");
                // Ctrl-C and SIGTERM end the wait; the API server then stops in order (watches, HTTP, store).
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
                using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
                using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
                try
                {
                    await Task.Delay(Timeout.Infinite, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
                Console.WriteLine("Stopping...");
                foreach (var component in components.Reverse())
                {
                    await component.DisposeAsync();
                }
            }
            Console.WriteLine("Stopped; state kept in " + dir);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// HOOK: where the operator (src/Operator) and one vmkerneld per simulated host (src/NodeDaemon) will start,
    /// pointed at <paramref name="api"/>'s kubeconfig. They do not exist yet, so nothing starts; the returned
    /// components are stopped in reverse order on Ctrl-C before the API server stops.
    /// </summary>
    private static Task<IReadOnlyList<IAsyncDisposable>> StartOperatorAndNodeDaemonsAsync(ApiServerHost api, int hosts, ILoggerFactory loggerFactory, CancellationToken ct)
    {
        loggerFactory.CreateLogger("Vmk.Vmctl.Standalone").LogWarning(
            "Operator and node daemons are not part of this build yet: only the API server runs ({Hosts} host(s) requested)", hosts);
        _ = api;
        _ = ct;
        return Task.FromResult<IReadOnlyList<IAsyncDisposable>>([]);
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
