using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Vmk.NodeDaemon.Client.Security;

namespace Vmk.NodeDaemon.Configuration;

/// <summary>
/// Kestrel's side of the mutual TLS: the daemon presents its certificate and demands one from every caller,
/// accepted only if it chains to the installation's CA with the clientAuth usage. A caller without a
/// certificate, or with one from any other CA (the system's roots included), fails the TLS handshake and never
/// reaches a handler.
/// </summary>
public static class MutualTls
{
    public static HttpsConnectionAdapterOptions ServerOptions(X509Certificate2 ca, X509Certificate2 serverCertificate, ILogger logger) => new()
    {
        ServerCertificate = serverCertificate,
        SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        ClientCertificateMode = ClientCertificateMode.RequireCertificate,
        CheckCertificateRevocation = false,
        ClientCertificateValidation = (certificate, _, _) =>
        {
            var ok = CertificateValidation.ChainsTo(certificate, ca, CertificateValidation.ClientAuth);
            if (!ok)
            {
                logger.LogWarning("Refused a gRPC client: certificate {Subject} (issuer {Issuer}) is not a client certificate of this installation's CA",
                    certificate.Subject, certificate.Issuer);
            }
            return ok;
        },
    };
}
