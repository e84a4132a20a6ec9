using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Vmk.NodeDaemon.Client.Security;
using Vmk.NodeDaemon.Protos;

namespace Vmk.Operator.NodeClients;

/// <summary>
/// One gRPC channel (HTTP/2 over mutual TLS) per host, keyed by the Host's name and dialled at its
/// spec.endpoint; a changed endpoint disposes the old channel and dials the new one. The daemons' certificates
/// carry one service name (--vmkerneld-server-name), not each host's address, so the name check is done against
/// that name; the chain must lead to the installation's CA either way.
/// </summary>
public sealed class DaemonConnectionPool : IDisposable
{
    private readonly ConcurrentDictionary<string, (string Endpoint, GrpcChannel Channel)> _channels = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly X509Certificate2 _ca;
    private readonly X509Certificate2 _clientCertificate;
    private readonly string? _serverName;
    private readonly ILogger _logger;

    public DaemonConnectionPool(X509Certificate2 ca, X509Certificate2 clientCertificate, string? serverName, ILogger<DaemonConnectionPool> logger)
    {
        _ca = ca;
        _clientCertificate = clientCertificate;
        _serverName = string.IsNullOrWhiteSpace(serverName) ? null : serverName;
        _logger = logger;
    }

    /// <summary>Raised when a host's channel is (re)dialled, with the host name: its watch stream follows the new endpoint.</summary>
    public event Action<string>? Redialled;

    public GrpcChannel Channel(string host, string endpoint)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        ArgumentException.ThrowIfNullOrWhiteSpace(endpoint);
        if (_channels.TryGetValue(host, out var existing) && existing.Endpoint == endpoint)
        {
            return existing.Channel;
        }
        GrpcChannel channel;
        lock (_gate)
        {
            if (_channels.TryGetValue(host, out existing) && existing.Endpoint == endpoint)
            {
                return existing.Channel;
            }
            channel = Dial(endpoint);
            _channels[host] = (endpoint, channel);
            if (existing.Channel is not null)
            {
                _logger.LogInformation("Host {Host} moved from {Old} to {New}; re-dialled", host, existing.Endpoint, endpoint);
                existing.Channel.Dispose();
            }
            else
            {
                _logger.LogInformation("Dialled vmkerneld of host {Host} at {Endpoint}", host, endpoint);
            }
        }
        try
        {
            Redialled?.Invoke(host);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Redialled handler failed for host {Host}", host);
        }
        return channel;
    }

    public VmService.VmServiceClient Vms(string host, string endpoint) => new(Channel(host, endpoint));

    public DatastoreService.DatastoreServiceClient Datastores(string host, string endpoint) => new(Channel(host, endpoint));

    public PortGroupService.PortGroupServiceClient PortGroups(string host, string endpoint) => new(Channel(host, endpoint));

    public HostService.HostServiceClient Hosts(string host, string endpoint) => new(Channel(host, endpoint));

    /// <summary>Drops the channel of a host that is gone.</summary>
    public void Forget(string host)
    {
        if (_channels.TryRemove(host, out var old))
        {
            old.Channel.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var (_, (_, channel)) in _channels)
        {
            channel.Dispose();
        }
        _channels.Clear();
    }

    private GrpcChannel Dial(string endpoint)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        handler.SslOptions.ClientCertificates = [_clientCertificate];
        handler.SslOptions.RemoteCertificateValidationCallback = Validate;
        return GrpcChannel.ForAddress(new Uri("https://" + endpoint), new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = 16 * 1024 * 1024,
            // A restarted daemon is reached again within seconds: with the default (up to 120 s) the channel kept
            // failing every call at once long after the host reported itself Ready.
            MaxReconnectBackoff = TimeSpan.FromSeconds(5),
        });
    }

    private bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            return false;
        }
        using var cert = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
        {
            // Dialled by address; the certificate must then name the configured service name instead.
            if (_serverName is null || !cert.MatchesHostname(_serverName, allowWildcards: true, allowCommonName: false))
            {
                return false;
            }
        }
        return CertificateValidation.ChainsTo(cert, _ca, CertificateValidation.ServerAuth);
    }
}
