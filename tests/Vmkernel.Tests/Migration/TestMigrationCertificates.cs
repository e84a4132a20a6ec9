using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Vmk.Vmkernel.Migration;

namespace Vmk.Vmkernel.Tests.Migration;

/// <summary>
/// A CA with one server and one client certificate for the migration TLS of the test hosts (both trust the CA;
/// the server certificate names 127.0.0.1, the migration address the tests use). Real X.509, checked by QEMU's GnuTLS.
/// </summary>
internal static class TestMigrationCertificates
{
    public static MigrationTlsFiles Write(string directory)
    {
        Directory.CreateDirectory(directory);
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=vmkernel-test-migration-ca", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2));
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        var files = new MigrationTlsFiles(
            Path.Combine(directory, "ca.crt"), Path.Combine(directory, "server.crt"), Path.Combine(directory, "server.key"),
            Path.Combine(directory, "client.crt"), Path.Combine(directory, "client.key"));
        File.WriteAllText(files.CaCertificate, ca.ExportCertificatePem());
        Issue(ca, "vmk-migration-server", "1.3.6.1.5.5.7.3.1", san.Build(), files.ServerCertificate, files.ServerKey);
        Issue(ca, "vmk-migration-client", "1.3.6.1.5.5.7.3.2", null, files.ClientCertificate, files.ClientKey);
        return files;
    }

    private static void Issue(X509Certificate2 ca, string name, string usage, X509Extension? san, string certPath, string keyPath)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        if (san is not null)
        {
            request.CertificateExtensions.Add(san);
        }
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        var now = DateTimeOffset.UtcNow;
        using var cert = request.Create(ca, now.AddMinutes(-5), now.AddDays(1), serial);
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
    }
}
