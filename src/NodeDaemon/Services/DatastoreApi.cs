using Grpc.Core;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Services;

/// <summary>DatastoreService: mount, unmount and report VMFS datastores on this host.</summary>
public sealed class DatastoreApi(PathPolicy paths) : DatastoreService.DatastoreServiceBase
{
    public override Task<DatastoreStatus> Mount(MountDatastoreRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.Name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name: missing; name the datastore"));
        }
        if (!paths.TryResolveDatastoreDevice(request.DevicePath, out _, out var error))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"datastore '{request.Name}': {error}"));
        }
        // VmkernelHost.MountDatastoreAsync (datastore + NBD export wiring) is being added to the VMkernel.
        throw new RpcException(new Status(StatusCode.Unimplemented,
            $"datastore '{request.Name}': mounting waits for the VMkernel's datastore support (VmkernelHost.MountDatastoreAsync)"));
    }

    public override Task<UnmountDatastoreResponse> Unmount(DatastoreRef request, ServerCallContext context) =>
        throw NotMounted(request.Name);

    public override Task<DatastoreStatus> Get(DatastoreRef request, ServerCallContext context) =>
        throw NotMounted(request.Name);

    public override Task<ListDatastoresResponse> List(ListDatastoresRequest request, ServerCallContext context) =>
        Task.FromResult(new ListDatastoresResponse());

    private static RpcException NotMounted(string name) => new(new Status(StatusCode.NotFound,
        $"datastore '{name}' is not mounted on this host; mount it with DatastoreService.Mount"));
}
