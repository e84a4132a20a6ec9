using System.Diagnostics;
using System.Net;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>
/// Cuts the migration network of one host in the kernel: an nftables table of its own (unique name) drops every
/// packet to or from the host's migration address, so an established migration stream stalls the way it does when
/// a cable is pulled (no reset, no error: the bytes just stop). The hosts' gRPC addresses are untouched. Disposal
/// removes the table.
/// </summary>
public sealed class MigrationNetworkCut : IAsyncDisposable
{
    private MigrationNetworkCut(string table) => Table = table;

    public string Table { get; }

    public static async Task<MigrationNetworkCut> StartAsync(IPAddress address)
    {
        var table = "vmk_test_cut_" + Guid.NewGuid().ToString("N")[..8];
        // Loopback traffic passes the output hook once per packet: dropping there catches both directions.
        var rules = $$"""
            table inet {{table}} {
                chain out {
                    type filter hook output priority 0; policy accept;
                    ip daddr {{address}} drop
                    ip saddr {{address}} drop
                }
            }
            """;
        await NftAsync(rules, "-f", "-");
        return new MigrationNetworkCut(table);
    }

    public async ValueTask DisposeAsync() => await NftAsync(null, "delete", "table", "inet", Table);

    private static async Task NftAsync(string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo("nft") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        await p.StandardInput.WriteAsync(stdin ?? "");
        p.StandardInput.Close();
        var error = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"nft {string.Join(' ', args)} failed ({p.ExitCode}): {await error}");
        }
    }
}
