namespace Vmk.Vmkernel.Network;

/// <summary>One line of a dnsmasq lease file: "&lt;expiry&gt; &lt;mac&gt; &lt;ip&gt; &lt;hostname&gt; &lt;client-id&gt;".</summary>
public sealed record DhcpLease(DateTimeOffset Expires, string Mac, string Address, string? Hostname)
{
    public static IReadOnlyList<DhcpLease> ReadFile(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return [];
        }
        var leases = new List<DhcpLease>();
        foreach (var line in lines)
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length >= 3 && long.TryParse(f[0], out var expiry))
            {
                leases.Add(new DhcpLease(
                    expiry == 0 ? DateTimeOffset.MaxValue : DateTimeOffset.FromUnixTimeSeconds(expiry),
                    f[1].ToLowerInvariant(), f[2], f.Length > 3 && f[3] != "*" ? f[3] : null));
            }
        }
        return leases;
    }
}
