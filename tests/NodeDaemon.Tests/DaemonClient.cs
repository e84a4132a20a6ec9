using Grpc.Net.Client;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>The typed clients of one vmkerneld over one mutual-TLS channel.</summary>
public sealed class DaemonClient(GrpcChannel channel) : IDisposable
{
    public GrpcChannel Channel { get; } = channel;

    public HostService.HostServiceClient Host { get; } = new(channel);

    public VmService.VmServiceClient Vms { get; } = new(channel);

    public DatastoreService.DatastoreServiceClient Datastores { get; } = new(channel);

    public PortGroupService.PortGroupServiceClient PortGroups { get; } = new(channel);

    public MigrationService.MigrationServiceClient Migrations { get; } = new(channel);

    public void Dispose() => Channel.Dispose();
}
