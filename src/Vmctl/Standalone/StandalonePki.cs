using System.Net;
using System.Security.Cryptography.X509Certificates;
using Vmk.NodeDaemon.Client.Security;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// The mutual-TLS material between the operator and the daemons, made once and kept under the data directory
/// (pki/): one CA (ca.crt, ca.key), per host a server certificate (hosts/hN/tls/: ca.crt, tls.crt, tls.key, and
/// client.crt/client.key for the source side of live migrations) for the
/// shared server name <see cref="DaemonServerName"/> plus the addresses the host is dialled on, and the operator's
/// client certificate (operator/tls/: ca.crt, tls.crt, tls.key), in the key names of a Kubernetes TLS Secret.
/// A host whose address changed gets a new server certificate; the CA and the rest are reused.
/// </summary>
internal static class StandalonePki
{
    /// <summary>The name every daemon's certificate carries and the operator checks (--vmkerneld-server-name).</summary>
    public const string DaemonServerName = "vmkerneld";

    public static void Ensure(StandaloneLayout layout, IReadOnlyList<HostPlan> hosts)
    {
        Directory.CreateDirectory(layout.PkiDirectory);
        var caCrt = Path.Combine(layout.PkiDirectory, "ca.crt");
        var caKey = Path.Combine(layout.PkiDirectory, "ca.key");
        var caIsNew = !File.Exists(caCrt) || !File.Exists(caKey);
        if (caIsNew)
        {
            using var fresh = CertificateAuthority.Create("vmk-standalone-vmkernel-ca");
            CertificateAuthority.WritePem(caCrt, fresh.Certificate, caKey);
        }
        using var ca = CertificateAuthority.Load(caCrt, caKey);
        foreach (var host in hosts)
        {
            var dir = layout.HostTlsDirectory(host.Name);
            Directory.CreateDirectory(dir);
            if (!caIsNew && IsCurrent(dir, ca, host.Address) && File.Exists(Path.Combine(dir, TlsFiles.ClientCertificate)))
            {
                continue;
            }
            using var server = ca.IssueServer(DaemonServerName, [DaemonServerName, "localhost", host.Name], [IPAddress.Loopback, host.Address]);
            CertificateAuthority.WritePem(Path.Combine(dir, TlsFiles.Certificate), server, Path.Combine(dir, TlsFiles.Key));
            // The source side of a live migration presents this one to the target's QEMU (TLS is on by default).
            using var client = ca.IssueClient("vmkerneld-" + host.Name);
            CertificateAuthority.WritePem(Path.Combine(dir, TlsFiles.ClientCertificate), client, Path.Combine(dir, TlsFiles.ClientKey));
            File.Copy(caCrt, Path.Combine(dir, TlsFiles.CaCertificate), overwrite: true);
        }
        var op = layout.OperatorTlsDirectory;
        Directory.CreateDirectory(op);
        if (caIsNew || !IsCurrent(op, ca, null))
        {
            using var client = ca.IssueClient("vmkernel-operator");
            CertificateAuthority.WritePem(Path.Combine(op, TlsFiles.Certificate), client, Path.Combine(op, TlsFiles.Key));
            File.Copy(caCrt, Path.Combine(op, TlsFiles.CaCertificate), overwrite: true);
        }
    }

    private static bool IsCurrent(string dir, CertificateAuthority ca, IPAddress? address)
    {
        var crt = Path.Combine(dir, TlsFiles.Certificate);
        var key = Path.Combine(dir, TlsFiles.Key);
        if (!File.Exists(crt) || !File.Exists(key) || !File.Exists(Path.Combine(dir, TlsFiles.CaCertificate)))
        {
            return false;
        }
        using var cert = X509Certificate2.CreateFromPemFile(crt, key);
        if (cert.Issuer != ca.Certificate.Subject || cert.NotAfter < DateTime.Now.AddDays(30))
        {
            return false;
        }
        if (address is null)
        {
            return true;
        }
        var san = cert.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        return san is not null && san.EnumerateIPAddresses().Contains(address);
    }
}
