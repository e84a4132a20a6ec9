using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// The "physical" network of a multi-host standalone run: a bridge in the root namespace (vmk-ID-br, with the
/// fabric's first address, where the API server also listens) and per host a network namespace (vmk-ID-hN) joined
/// to it by a veth pair (vmk-ID-vN outside, fabric0 inside). ID comes from the data directory, so a run restarted
/// on the same directory reuses its namespaces (and the VMs still running in them); the /24 is 10.77.X.0 with X
/// chosen so that no other interface on the machine has an address in it. Removed on dispose.
/// </summary>
internal sealed class Fabric : IAsyncDisposable
{
    private readonly ILogger _logger;

    private Fabric(string bridge, IPAddress gateway, IReadOnlyList<HostPlan> hosts, ILogger logger)
    {
        Bridge = bridge;
        Gateway = gateway;
        Hosts = hosts;
        _logger = logger;
    }

    public string Bridge { get; }

    /// <summary>The bridge's address: how hosts reach the API server and how the root namespace reaches hosts.</summary>
    public IPAddress Gateway { get; }

    public IReadOnlyList<HostPlan> Hosts { get; }

    public static async Task<Fabric> CreateAsync(string shortId, int hostCount, int grpcPort, int metricsPort, ILogger logger, CancellationToken ct)
    {
        var bridge = $"vmk-{shortId}-br";
        var third = await PickSubnetAsync(shortId, bridge, ct);
        var gateway = IPAddress.Parse($"10.77.{third}.1");
        var hosts = Enumerable.Range(1, hostCount)
            .Select(i => new HostPlan($"host-{i}", $"vmk-{shortId}-h{i}", IPAddress.Parse($"10.77.{third}.{i + 1}"), grpcPort, metricsPort))
            .ToList();
        var fabric = new Fabric(bridge, gateway, hosts, logger);
        try
        {
            await fabric.SetUpAsync(ct);
        }
        catch
        {
            await fabric.DisposeAsync();
            throw;
        }
        logger.LogInformation("Fabric {Bridge} {Gateway}/24 with {Hosts} host namespaces ({First} ... {Last})", bridge, gateway, hostCount, hosts[0].NetworkNamespace, hosts[^1].NetworkNamespace);
        return fabric;
    }

    /// <summary>Removes the namespaces (their veths go with them) and the bridge. Namespaces of hosts beyond this run's count are left alone.</summary>
    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < Hosts.Count; i++)
        {
            var host = Hosts[i];
            if (await RunAsync(["ip", "netns", "pids", host.NetworkNamespace!], CancellationToken.None, check: false) is { Length: > 0 } pids
                && pids.Split('\n', StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } left)
            {
                // Something the daemon started outlived it (a VM that would not stop): it would keep the namespace alive.
                _logger.LogWarning("Processes still in {Netns} ({Pids}); killing them before the namespace goes", host.NetworkNamespace, string.Join(' ', left));
                foreach (var pid in left)
                {
                    if (int.TryParse(pid, out var id))
                    {
                        try
                        {
                            Process.GetProcessById(id).Kill();
                        }
                        catch (ArgumentException)
                        {
                        }
                    }
                }
            }
            // Deleting our end takes the pair down at once; left to the namespace's removal, the kernel tears the
            // veth down asynchronously and it can still be listed after we return.
            await RunAsync(["ip", "link", "del", $"{Bridge[..^2]}v{i + 1}"], CancellationToken.None, check: false);
            await RunAsync(["ip", "netns", "del", host.NetworkNamespace!], CancellationToken.None, check: false);
        }
        await RunAsync(["ip", "link", "del", Bridge], CancellationToken.None, check: false);
    }

    private async Task SetUpAsync(CancellationToken ct)
    {
        if (!await ExistsAsync(["ip", "link", "show", Bridge], ct))
        {
            await RunAsync(["ip", "link", "add", Bridge, "type", "bridge"], ct);
        }
        await RunAsync(["ip", "addr", "replace", $"{Gateway}/24", "dev", Bridge], ct);
        await RunAsync(["ip", "link", "set", Bridge, "up"], ct);
        var existing = (await RunAsync(["ip", "netns", "list"], ct)).Split('\n').Select(l => l.Split(' ')[0]).ToHashSet();
        for (var i = 0; i < Hosts.Count; i++)
        {
            var host = Hosts[i];
            var ns = host.NetworkNamespace!;
            var outside = $"{Bridge[..^2]}v{i + 1}";
            if (existing.Contains(ns) && await ExistsAsync(["ip", "netns", "exec", ns, "ip", "link", "show", "fabric0"], ct))
            {
                // Left by a run that was killed: keep it, the VMs it still holds are re-adopted by the new daemon.
                _logger.LogInformation("Reusing network namespace {Netns} from an earlier run", ns);
            }
            else
            {
                if (existing.Contains(ns))
                {
                    await RunAsync(["ip", "netns", "del", ns], ct);
                }
                await RunAsync(["ip", "link", "del", outside], ct, check: false);
                await RunAsync(["ip", "netns", "add", ns], ct);
                await RunAsync(["ip", "link", "add", outside, "type", "veth", "peer", "name", "fabric0", "netns", ns], ct);
            }
            await RunAsync(["ip", "link", "set", outside, "master", Bridge, "up"], ct);
            await RunAsync(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], ct);
            await RunAsync(["ip", "netns", "exec", ns, "ip", "addr", "replace", $"{host.Address}/24", "dev", "fabric0"], ct);
            await RunAsync(["ip", "netns", "exec", ns, "ip", "link", "set", "fabric0", "up"], ct);
        }
    }

    private static async Task<int> PickSubnetAsync(string shortId, string bridge, CancellationToken ct)
    {
        var taken = new HashSet<int>();
        foreach (var line in (await RunAsync(["ip", "-4", "-o", "addr", "show"], ct)).Split('\n'))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var inet = Array.IndexOf(parts, "inet");
            if (inet < 0 || inet + 1 >= parts.Length || !parts[inet + 1].StartsWith("10.77.", StringComparison.Ordinal))
            {
                continue;
            }
            var third = int.Parse(parts[inet + 1].Split('.')[2], System.Globalization.CultureInfo.InvariantCulture);
            if (parts.Length > 1 && parts[1] == bridge)
            {
                return third;
            }
            taken.Add(third);
        }
        var start = Convert.ToInt32(shortId[..2], 16) % 250 + 1;
        for (var k = 0; k < 250; k++)
        {
            var candidate = (start - 1 + k) % 250 + 1;
            if (!taken.Contains(candidate))
            {
                return candidate;
            }
        }
        throw new StandaloneException("Every 10.77.X.0/24 fabric subnet is in use on this machine; remove stale vmk-*-br bridges (ip link del NAME).");
    }

    private static async Task<bool> ExistsAsync(string[] argv, CancellationToken ct)
    {
        try
        {
            await RunAsync(argv, ct);
            return true;
        }
        catch (StandaloneException)
        {
            return false;
        }
    }

    internal static async Task<string> RunAsync(string[] argv, CancellationToken ct, bool check = true)
    {
        var info = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in argv[1..])
        {
            info.ArgumentList.Add(a);
        }
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new StandaloneException($"cannot run {argv[0]}: {e.Message} (iproute2 is needed for --hosts > 1)");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct);
            if (check && process.ExitCode != 0)
            {
                throw new StandaloneException($"`{string.Join(' ', argv)}` failed: {(await stderr).Trim()}");
            }
            return await stdout;
        }
    }
}
