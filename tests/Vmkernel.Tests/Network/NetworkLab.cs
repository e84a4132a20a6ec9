using System.Diagnostics;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// Hosts as network namespaces joined by a fabric bridge (in a namespace of its own, so nothing touches the
/// machine's own network). Host i has "uplink0" with 172.31.&lt;lab&gt;.i/24 on the fabric. Disposal kills every
/// process left in the namespaces (dnsmasq, QEMU) and deletes them, which deletes every device and nftables
/// table inside: nothing survives a failed test.
/// </summary>
public sealed class NetworkLab : IAsyncDisposable
{
    private readonly List<string> _namespaces = [];

    private NetworkLab(string id, int subnet)
    {
        Id = id;
        Subnet = subnet;
        Fabric = $"vmkf-{id}";
    }

    public string Id { get; }

    public int Subnet { get; }

    public string Fabric { get; }

    public List<LabHost> Hosts { get; } = [];

    public static async Task<NetworkLab> CreateAsync(int hosts, int fabricMtu = 1500)
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        var lab = new NetworkLab(id, Random.Shared.Next(1, 250));
        try
        {
            await lab.AddNamespaceAsync(lab.Fabric);
            await Sh($"ip -n {lab.Fabric} link add fabric type bridge && ip -n {lab.Fabric} link set fabric up");
            for (var i = 1; i <= hosts; i++)
            {
                var ns = $"vmkh{i}-{id}";
                await lab.AddNamespaceAsync(ns);
                var address = $"172.31.{lab.Subnet}.{i}";
                await Sh($"ip -n {lab.Fabric} link add h{i} mtu {fabricMtu} type veth peer name uplink0 netns {ns} mtu {fabricMtu}");
                await Sh($"ip -n {lab.Fabric} link set h{i} master fabric && ip -n {lab.Fabric} link set h{i} up");
                await Sh($"ip -n {ns} addr add {address}/24 dev uplink0 && ip -n {ns} link set uplink0 up && ip -n {ns} link set lo up");
                lab.Hosts.Add(new LabHost(ns, address));
            }
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }
        return lab;
    }

    private async Task AddNamespaceAsync(string name)
    {
        await Sh($"ip netns add {name}");
        _namespaces.Add(name);
    }

    /// <summary>Runs a shell command; throws with its output if it fails.</summary>
    public static async Task<string> Sh(string command, bool check = true)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (check && p.ExitCode != 0)
        {
            throw new InvalidOperationException($"`{command}` failed ({p.ExitCode}): {await stderr}");
        }
        return await stdout + await stderr;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var ns in _namespaces.AsEnumerable().Reverse())
        {
            // Kill everything first, then wait for all at once: a killed dnsmasq whose parent is init stays a
            // zombie until init reaps it, and counts as gone.
            var pids = (await Sh($"ip netns pids {ns}", check: false))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => int.TryParse(l.Trim(), out var pid) ? pid : 0)
                .Where(pid => pid > 0)
                .ToList();
            foreach (var pid in pids)
            {
                kill(pid, 9);
            }
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (pids.Any(Runs) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20); // polling /proc: processes we did not start give no exit event
            }
            await Sh($"ip netns del {ns}", check: false);
        }
    }

    /// <summary>Alive and not a zombie waiting for a reaper.</summary>
    public static bool Runs(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}

/// <summary>One "host" of a <see cref="NetworkLab"/>: its namespace and fabric address.</summary>
public sealed record LabHost(string Namespace, string Address);
