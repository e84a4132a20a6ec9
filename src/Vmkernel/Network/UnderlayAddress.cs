using System.Text.Json;

namespace Vmk.Vmkernel.Network;

/// <summary>Finds this host's VXLAN tunnel endpoint address by asking the kernel (in the vSwitch's namespace).</summary>
public static class UnderlayAddress
{
    /// <summary>The first IPv4 address of a device, or null when it has none (or does not exist).</summary>
    public static async Task<string?> OfInterfaceAsync(ICommandRunner runner, string device, CancellationToken ct = default)
    {
        var r = await runner.RunAsync(new CommandRequest("ip", ["-j", "-4", "addr", "show", "dev", device]), ct);
        if (!r.Ok || string.IsNullOrWhiteSpace(r.Stdout))
        {
            return null;
        }
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.EnumerateArray()
            .SelectMany(l => l.TryGetProperty("addr_info", out var a) ? a.EnumerateArray().ToList() : [])
            .Select(a => a.TryGetProperty("local", out var local) ? local.GetString() : null)
            .FirstOrDefault(a => a is not null);
    }

    /// <summary>The source address this host uses toward <paramref name="destination"/> (`ip route get`), or null without a route.</summary>
    public static async Task<string?> TowardAsync(ICommandRunner runner, string destination, CancellationToken ct = default)
    {
        var r = await runner.RunAsync(new CommandRequest("ip", ["-j", "route", "get", destination]), ct);
        if (!r.Ok || string.IsNullOrWhiteSpace(r.Stdout))
        {
            return null;
        }
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.EnumerateArray()
            .Select(e => e.TryGetProperty("prefsrc", out var src) ? src.GetString() : null)
            .FirstOrDefault(a => a is not null);
    }
}
