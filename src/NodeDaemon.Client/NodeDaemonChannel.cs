using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using Vmk.NodeDaemon.Client.Security;

namespace Vmk.NodeDaemon.Client;

/// <summary>Opens a gRPC channel to a vmkerneld over mutual TLS.</summary>
public static class NodeDaemonChannel
{
    /// <summary>
    /// A channel to <paramref name="address"/> (https://host:port) that presents <paramref name="clientCertificate"/>
    /// and trusts only daemons whose certificate chains to <paramref name="ca"/>. Pass a null client certificate only
    /// to prove that the daemon refuses such callers.
    /// </summary>
    public static GrpcChannel Create(Uri address, X509Certificate2? clientCertificate, X509Certificate2 ca)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(ca);
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        handler.SslOptions.RemoteCertificateValidationCallback = CertificateValidation.ServerValidator(ca);
        if (clientCertificate is not null)
        {
            handler.SslOptions.ClientCertificates = [clientCertificate];
        }
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = 16 * 1024 * 1024,
        });
    }

    /// <summary>A channel with the client set from a directory of TLS files (ca.crt plus the given certificate and key).</summary>
    public static GrpcChannel Create(Uri address, string tlsDirectory, string certificateFile = TlsFiles.ClientCertificate, string keyFile = TlsFiles.ClientKey)
    {
        var (ca, cert) = TlsFiles.Load(tlsDirectory, certificateFile, keyFile);
        return Create(address, cert, ca);
    }
}
