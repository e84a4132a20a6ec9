using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Vmk.NodeDaemon.Client.Security;

/// <summary>
/// Trust decisions of the mutual TLS: a peer is accepted only if its certificate chains to the one CA of the
/// installation (not to the system's roots) and carries the extended key usage for its role.
/// </summary>
public static class CertificateValidation
{
    public static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    public static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>True when <paramref name="certificate"/> was issued by <paramref name="ca"/> for <paramref name="usage"/> and is valid now.</summary>
    public static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 ca, Oid usage)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        // One private CA, short-lived certificates replaced by re-issuing: there is no CRL or OCSP to ask.
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(usage);
        if (!chain.Build(certificate))
        {
            return false;
        }
        var root = chain.ChainElements[^1].Certificate;
        return root.RawDataMemory.Span.SequenceEqual(ca.RawDataMemory.Span);
    }

    /// <summary>
    /// A client-side callback that accepts the daemon only if its certificate chains to <paramref name="ca"/> and
    /// names the host the client dialled (name mismatches are never forgiven).
    /// </summary>
    public static RemoteCertificateValidationCallback ServerValidator(X509Certificate2 ca) =>
        (_, certificate, _, errors) =>
        {
            if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
            {
                return false;
            }
            using var cert = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return ChainsTo(cert, ca, ServerAuth);
        };
}
