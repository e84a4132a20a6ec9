using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Vmk.ApiServer.Security;

/// <summary>
/// The data directory's TLS material and bearer token: a self-made CA (ca.crt/ca.key), a server certificate it signs
/// for localhost, 127.0.0.1 and ::1 (server.crt/server.key), and a random token (token). Created on first start,
/// reused afterwards so existing kubeconfigs keep working; the server certificate is re-issued when it nears expiry.
/// Private keys and the token are written mode 0600.
/// </summary>
public sealed class ServerCredentials
{
    private ServerCredentials(X509Certificate2 ca, X509Certificate2 server, string token)
    {
        CaCertificate = ca;
        ServerCertificate = server;
        Token = token;
    }

    public X509Certificate2 CaCertificate { get; }

    /// <summary>With private key, for Kestrel.</summary>
    public X509Certificate2 ServerCertificate { get; }

    public string Token { get; }

    public string CaPem => CaCertificate.ExportCertificatePem();

    public static ServerCredentials LoadOrCreate(string dataDir, IEnumerable<string>? extraNames = null)
    {
        var caCrt = Path.Combine(dataDir, "ca.crt");
        var caKey = Path.Combine(dataDir, "ca.key");
        var srvCrt = Path.Combine(dataDir, "server.crt");
        var srvKey = Path.Combine(dataDir, "server.key");
        var tokenPath = Path.Combine(dataDir, "token");

        X509Certificate2 ca;
        if (File.Exists(caCrt) && File.Exists(caKey))
        {
            ca = X509Certificate2.CreateFromPemFile(caCrt, caKey);
        }
        else
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var req = new CertificateRequest("CN=vmk-standalone-ca", key, HashAlgorithmName.SHA256);
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
            req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
            ca = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(10));
            WriteSecret(caKey, key.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(caCrt, ca.ExportCertificatePem());
        }

        var wanted = extraNames?.ToList() ?? [];
        X509Certificate2? server = null;
        if (File.Exists(srvCrt) && File.Exists(srvKey))
        {
            server = X509Certificate2.CreateFromPemFile(srvCrt, srvKey);
            if (server.NotAfter < DateTime.Now.AddDays(30) || server.Issuer != ca.Subject || !CoversNames(server, wanted))
            {
                server = null;
            }
        }
        if (server is null)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var req = new CertificateRequest("CN=vmk-apiserver", key, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("localhost");
            san.AddIpAddress(IPAddress.Loopback);
            san.AddIpAddress(IPAddress.IPv6Loopback);
            foreach (var name in wanted)
            {
                if (IPAddress.TryParse(name, out var ip))
                {
                    san.AddIpAddress(ip);
                }
                else
                {
                    san.AddDnsName(name);
                }
            }
            req.CertificateExtensions.Add(san.Build());
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
            req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
            req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
            var serial = RandomNumberGenerator.GetBytes(16);
            serial[0] &= 0x7f;
            using var issued = req.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1), serial);
            server = issued.CopyWithPrivateKey(key);
            WriteSecret(srvKey, key.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(srvCrt, server.ExportCertificatePem());
            // Kestrel on Linux is happiest with a certificate whose key was imported, not an ephemeral one.
            server = X509Certificate2.CreateFromPemFile(srvCrt, srvKey);
        }

        string token;
        if (File.Exists(tokenPath))
        {
            token = File.ReadAllText(tokenPath).Trim();
        }
        else
        {
            token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            WriteSecret(tokenPath, token + "\n");
        }
        return new ServerCredentials(ca, server, token);
    }

    /// <summary>An existing certificate is kept only when it already names every address asked for (a new fabric address re-issues it).</summary>
    private static bool CoversNames(X509Certificate2 certificate, IReadOnlyList<string> names)
    {
        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        if (san is null)
        {
            return names.Count == 0;
        }
        var ips = san.EnumerateIPAddresses().ToHashSet();
        var dns = san.EnumerateDnsNames().ToHashSet(StringComparer.OrdinalIgnoreCase);
        return names.All(n => IPAddress.TryParse(n, out var ip) ? ips.Contains(ip) : dns.Contains(n));
    }

    private static void WriteSecret(string path, string content)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using var stream = new FileStream(path, options);
        using var writer = new StreamWriter(stream);
        writer.Write(content);
    }
}
