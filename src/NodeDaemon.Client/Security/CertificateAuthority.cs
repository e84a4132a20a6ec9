using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Vmk.NodeDaemon.Client.Security;

/// <summary>
/// A small certificate authority for the mutual TLS between the operator and the daemons: one CA, a server
/// certificate per daemon (with the names and addresses it is reached by), client certificates for the operator
/// and tools. Production mounts the same three files from a Kubernetes Secret (the chart generates them); the
/// standalone mode, tests and benchmarks make them here. ECDSA P-256 keys, SHA-256 signatures.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    private CertificateAuthority(X509Certificate2 certificate)
    {
        Certificate = certificate;
    }

    /// <summary>The CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    public static CertificateAuthority Create(string commonName, TimeSpan? validity = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var cert = request.CreateSelfSigned(now.AddMinutes(-5), now + (validity ?? TimeSpan.FromDays(3650)));
        return new CertificateAuthority(cert);
    }

    /// <summary>Loads a CA from PEM files (certificate and its private key).</summary>
    public static CertificateAuthority Load(string certificatePath, string keyPath) =>
        new(X509Certificate2.CreateFromPemFile(certificatePath, keyPath));

    /// <summary>A server certificate valid for every DNS name and IP address given (the SANs a client checks).</summary>
    public X509Certificate2 IssueServer(string commonName, IEnumerable<string> dnsNames, IEnumerable<IPAddress> addresses, TimeSpan? validity = null)
    {
        var san = new SubjectAlternativeNameBuilder();
        foreach (var dns in dnsNames.Distinct(StringComparer.OrdinalIgnoreCase))
        {
            san.AddDnsName(dns);
        }
        foreach (var ip in addresses.Distinct())
        {
            san.AddIpAddress(ip);
        }
        return Issue(commonName, ServerAuth, san.Build(), validity);
    }

    /// <summary>A client certificate (extended key usage clientAuth) for the operator or a tool.</summary>
    public X509Certificate2 IssueClient(string commonName, TimeSpan? validity = null) => Issue(commonName, ClientAuth, null, validity);

    /// <summary>
    /// Writes a complete set for one daemon and one client into <paramref name="directory"/>, in the key names of a
    /// Kubernetes TLS Secret: ca.crt, tls.crt, tls.key (the server), client.crt, client.key; ca.key too when
    /// <paramref name="includeCaKey"/>. Private keys are written with mode 0600.
    /// </summary>
    public static void WriteSet(string directory, IEnumerable<string> dnsNames, IEnumerable<IPAddress> addresses, bool includeCaKey = false)
    {
        Directory.CreateDirectory(directory);
        using var ca = Create("vmkernel-ca");
        using var server = ca.IssueServer("vmkerneld", dnsNames, addresses);
        using var client = ca.IssueClient("vmkernel-operator");
        WritePem(Path.Combine(directory, TlsFiles.CaCertificate), ca.Certificate, null);
        WritePem(Path.Combine(directory, TlsFiles.Certificate), server, Path.Combine(directory, TlsFiles.Key));
        WritePem(Path.Combine(directory, TlsFiles.ClientCertificate), client, Path.Combine(directory, TlsFiles.ClientKey));
        if (includeCaKey)
        {
            WritePem(Path.Combine(directory, "ca.crt"), ca.Certificate, Path.Combine(directory, "ca.key"));
        }
    }

    /// <summary>Writes a certificate as PEM, and its private key (PKCS#8 PEM, mode 0600) when a key path is given.</summary>
    public static void WritePem(string certificatePath, X509Certificate2 certificate, string? keyPath)
    {
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        if (keyPath is null)
        {
            return;
        }
        var key = certificate.GetECDsaPrivateKey() as AsymmetricAlgorithm
            ?? certificate.GetRSAPrivateKey()
            ?? throw new InvalidOperationException($"certificate {certificate.Subject} has no private key to write");
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var stream = new FileStream(keyPath, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }
        key.Dispose();
    }

    public void Dispose() => Certificate.Dispose();

    private X509Certificate2 Issue(string commonName, Oid usage, X509Extension? san, TimeSpan? validity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        if (san is not null)
        {
            request.CertificateExtensions.Add(san);
        }
        var now = DateTimeOffset.UtcNow;
        var notAfter = now + (validity ?? TimeSpan.FromDays(365));
        if (notAfter > Certificate.NotAfter)
        {
            notAfter = Certificate.NotAfter;
        }
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f; // a positive serial number, as RFC 5280 asks
        using var issued = request.Create(Certificate, now.AddMinutes(-5), notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }
}
