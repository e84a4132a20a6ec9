using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Client.Security;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>Only callers holding a client certificate of the installation's CA reach the API.</summary>
public sealed class MutualTlsTests : IAsyncLifetime
{
    private readonly TestHost _host = new();
    private DaemonProcess _daemon = null!;

    public async Task InitializeAsync() => _daemon = await _host.StartDaemonAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task A_client_with_a_certificate_of_the_ca_is_served()
    {
        using var client = _host.Connect(_daemon);

        var info = await client.Host.GetInfoAsync(new GetHostInfoRequest());

        Assert.Equal(_host.HostName, info.Name);
        Assert.Equal("tcg", info.Accelerator.Mode);
        Assert.Contains("configuration", info.Accelerator.Reason, StringComparison.Ordinal);
        Assert.Equal(Environment.ProcessorCount * 1000L, info.Capacity.CpuMillicores);
        Assert.True(info.Allocatable.MemoryBytes < info.Capacity.MemoryBytes);
        Assert.Equal(0, info.VmsByState["Running"]);
        Assert.False(string.IsNullOrEmpty(info.Version));
    }

    [Fact]
    public async Task A_client_without_a_certificate_is_refused()
    {
        var (ca, _) = TlsFiles.Load(_host.TlsDirectory, TlsFiles.ClientCertificate, TlsFiles.ClientKey);
        using var channel = NodeDaemonChannel.Create(_daemon.GrpcAddress, clientCertificate: null, ca);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await new HostService.HostServiceClient(channel).GetInfoAsync(new GetHostInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(30)));

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        await AssertStillServesItsOwnClient();
    }

    [Fact]
    public async Task A_client_with_a_certificate_of_another_ca_is_refused()
    {
        var (ca, _) = TlsFiles.Load(_host.TlsDirectory, TlsFiles.ClientCertificate, TlsFiles.ClientKey);
        using var otherCa = CertificateAuthority.Create("someone-else");
        using var stranger = otherCa.IssueClient("vmkernel-operator"); // same subject, wrong issuer
        using var channel = NodeDaemonChannel.Create(_daemon.GrpcAddress, stranger, ca);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await new HostService.HostServiceClient(channel).GetInfoAsync(new GetHostInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(30)));

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains(LogLines(), l => l.Contains("Refused a gRPC client", StringComparison.Ordinal) && l.Contains("someone-else", StringComparison.Ordinal));
        await AssertStillServesItsOwnClient();
    }

    [Fact]
    public async Task A_server_certificate_of_the_ca_is_not_a_client_certificate()
    {
        var (ca, server) = TlsFiles.Load(_host.TlsDirectory); // tls.crt: serverAuth only
        using var channel = NodeDaemonChannel.Create(_daemon.GrpcAddress, server, ca);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await new HostService.HostServiceClient(channel).GetInfoAsync(new GetHostInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(30)));

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
    }

    [Fact]
    public async Task A_client_refuses_a_daemon_whose_certificate_is_not_of_its_ca()
    {
        var (_, clientCert) = TlsFiles.Load(_host.TlsDirectory, TlsFiles.ClientCertificate, TlsFiles.ClientKey);
        using var otherCa = CertificateAuthority.Create("someone-else");
        using var otherCaPublic = X509CertificateLoader.LoadCertificate(otherCa.Certificate.RawData);
        using var channel = NodeDaemonChannel.Create(_daemon.GrpcAddress, clientCert, otherCaPublic);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await new HostService.HostServiceClient(channel).GetInfoAsync(new GetHostInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(30)));

        // The client's own check failed the handshake: nothing was sent to a daemon it does not trust.
        Assert.NotEqual(StatusCode.OK, e.StatusCode);
        Assert.Contains(Chain(e), x => x is System.Security.Authentication.AuthenticationException);
    }

    [Fact]
    public async Task The_metrics_port_serves_only_metrics_and_the_api_port_never_serves_them()
    {
        using var http = new HttpClient();
        var other = await http.GetAsync(new Uri(_daemon.MetricsAddress, "/vmkernel.v1.HostService/GetInfo"));
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);

        using var client = _host.Connect(_daemon);
        var invoker = new HttpClient(new SocketsHttpHandler
        {
            SslOptions =
            {
                ClientCertificates = [TlsFiles.Load(_host.TlsDirectory, TlsFiles.ClientCertificate, TlsFiles.ClientKey).Certificate],
                RemoteCertificateValidationCallback = CertificateValidation.ServerValidator(TlsFiles.Load(_host.TlsDirectory).Ca),
            },
        })
        { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using (invoker)
        {
            var metricsOverTls = await invoker.GetAsync(new Uri(_daemon.GrpcAddress, "/metrics"));
            Assert.Equal(HttpStatusCode.NotFound, metricsOverTls.StatusCode);
        }
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException ?? (x as RpcException)?.Status.DebugException)
        {
            yield return x;
        }
    }

    private async Task AssertStillServesItsOwnClient()
    {
        using var client = _host.Connect(_daemon);
        Assert.Equal(_host.HostName, (await client.Host.GetInfoAsync(new GetHostInfoRequest())).Name);
    }

    private string[] LogLines() => _daemon.Output.Split('\n');
}
