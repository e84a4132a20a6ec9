using System.Net;
using Vmk.NodeDaemon.Client.Security;

namespace Vmk.NodeDaemon.Configuration;

/// <summary>
/// <c>vmkerneld certificates --out DIR [--dns NAME]... [--ip ADDR]...</c>: writes a fresh CA, a server certificate
/// for this daemon and a client certificate for the operator, for the standalone mode and for trying the daemon
/// by hand. Production mounts a Secret the chart made the same way.
/// </summary>
public static class CertificatesCommand
{
    public static int Run(IReadOnlyList<string> args)
    {
        string? output = null;
        var dns = new List<string> { "localhost", Environment.MachineName.ToLowerInvariant() };
        var ips = new List<IPAddress> { IPAddress.Loopback, IPAddress.IPv6Loopback };
        for (var i = 0; i < args.Count; i++)
        {
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--out":
                    output = Next();
                    break;
                case "--dns":
                    dns.Add(Next());
                    break;
                case "--ip":
                    var text = Next();
                    ips.Add(IPAddress.TryParse(text, out var ip) ? ip : throw new ArgumentException($"--ip '{text}' is not an IP address"));
                    break;
                default:
                    Console.Error.WriteLine($"vmkerneld certificates: unknown argument '{args[i]}'; usage: vmkerneld certificates --out DIR [--dns NAME]... [--ip ADDR]...");
                    return 2;
            }
        }
        if (output is null)
        {
            Console.Error.WriteLine("vmkerneld certificates: --out DIR is required");
            return 2;
        }
        CertificateAuthority.WriteSet(output, dns, ips);
        Console.WriteLine($"wrote {TlsFiles.CaCertificate}, {TlsFiles.Certificate}, {TlsFiles.Key}, {TlsFiles.ClientCertificate}, {TlsFiles.ClientKey} to {output}");
        return 0;
    }
}
