using Grpc.Core;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Protos;
using Vmk.Vmkernel;

namespace Vmk.NodeDaemon.Services;

/// <summary>DatastoreService: mount, unmount and report VMFS datastores on this host.</summary>
public sealed class DatastoreApi(VmkernelRunner vmkernel, PathPolicy paths, DatastoreObserver observer, ILogger<DatastoreApi> logger) : DatastoreService.DatastoreServiceBase
{
    public override async Task<DatastoreStatus> Mount(MountDatastoreRequest request, ServerCallContext context)
    {
        RequireName(request.Name);
        if (request.CreateSizeBytes > 0 && !paths.TryCreateDatastoreFile(request.DevicePath, request.CreateSizeBytes, out var createError))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"datastore '{request.Name}': {createError}"));
        }
        if (!paths.TryResolveDatastoreDevice(request.DevicePath, out var device, out var error))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"datastore '{request.Name}': {error}"));
        }
        try
        {
            // Joining a datastore writes its heartbeat region and may wait for a host-id lease: off the request thread.
            var mount = await Task.Run(() => vmkernel.Host.Storage.Mount(request.Name, device, request.FormatIfBlank), CancellationToken.None);
            logger.LogInformation("Datastore {Datastore} mounted from {Device}", request.Name, device);
            return ToProto(observer.Describe(mount));
        }
        catch (VmkernelException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, e.Message));
        }
    }

    public override Task<UnmountDatastoreResponse> Unmount(DatastoreRef request, ServerCallContext context)
    {
        RequireName(request.Name);
        if (observer.Find(request.Name) is null)
        {
            throw NotMounted(request.Name);
        }
        vmkernel.Host.Storage.Unmount(request.Name); // in use: VmkernelException, FAILED_PRECONDITION naming the VMs
        return Task.FromResult(new UnmountDatastoreResponse());
    }

    public override Task<DatastoreStatus> Get(DatastoreRef request, ServerCallContext context)
    {
        RequireName(request.Name);
        return Task.FromResult(ToProto(observer.Find(request.Name) ?? throw NotMounted(request.Name)));
    }

    public override Task<ListDatastoresResponse> List(ListDatastoresRequest request, ServerCallContext context)
    {
        var response = new ListDatastoresResponse();
        response.Datastores.AddRange(observer.Snapshot().Select(ToProto));
        return Task.FromResult(response);
    }

    public override Task<VirtualDisk> CreateDisk(CreateDiskRequest request, ServerCallContext context)
    {
        if (request.SizeBytes <= 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"size_bytes: {request.SizeBytes} is not a size; give the disk's size in bytes"));
        }
        return OnDatastore(request.Datastore, request.Name, ds => ds.CreateDisk(request.Name, request.SizeBytes, thin: !request.Thick));
    }

    public override Task<VirtualDisk> CloneDisk(CloneDiskRequest request, ServerCallContext context) =>
        OnDatastore(request.Datastore, request.Name, ds => ds.CloneDisk(request.Base, request.Name));

    public override async Task<DeleteDiskResponse> DeleteDisk(DiskRef request, ServerCallContext context)
    {
        await OnDatastore(request.Datastore, request.Name, ds =>
        {
            ds.DeleteDisk(request.Name);
            return null;
        });
        return new DeleteDiskResponse();
    }

    public override Task<ListDisksResponse> ListDisks(DatastoreRef request, ServerCallContext context)
    {
        RequireName(request.Name);
        var mount = vmkernel.Host.Storage.Datastores.FirstOrDefault(d => d.Name == request.Name) ?? throw NotMounted(request.Name);
        var response = new ListDisksResponse();
        response.Disks.AddRange(mount.Datastore.List().Select(d => ToProto(request.Name, d)));
        return Task.FromResult(response);
    }

    // VMFS metadata changes take the datastore's metadata lease and journal; run them off the request thread and
    // turn VMFS's own messages (name taken, no space, disk in use) into FAILED_PRECONDITION.
    private async Task<VirtualDisk> OnDatastore(string datastore, string disk, Func<Vmkernel.Vmfs.VmfsDatastore, Vmkernel.Vmfs.VirtualDiskInfo?> change)
    {
        RequireName(datastore);
        if (string.IsNullOrEmpty(disk))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name: missing; name the virtual disk"));
        }
        var mount = vmkernel.Host.Storage.Datastores.FirstOrDefault(d => d.Name == datastore) ?? throw NotMounted(datastore);
        try
        {
            var info = await Task.Run(() => change(mount.Datastore), CancellationToken.None);
            return info is null ? new VirtualDisk { Datastore = datastore, Name = disk } : ToProto(datastore, info);
        }
        catch (Vmkernel.Vmfs.VmfsException e)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"datastore '{datastore}', disk '{disk}': {e.Message}"));
        }
        catch (ArgumentException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"datastore '{datastore}', disk '{disk}': {e.Message}"));
        }
    }

    private static VirtualDisk ToProto(string datastore, Vmkernel.Vmfs.VirtualDiskInfo d) => new()
    {
        Datastore = datastore,
        Name = d.Name,
        SizeBytes = d.SizeBytes,
        AllocatedBytes = d.AllocatedBytes,
        Thin = d.Thin,
        ReadOnly = d.ReadOnlyBase,
        Base = d.Base ?? "",
    };

    internal static DatastoreStatus ToProto(DatastoreSnapshot s) => new()
    {
        Name = s.Name,
        DevicePath = s.DevicePath,
        Uuid = s.Uuid,
        Mounted = true,
        CapacityBytes = s.CapacityBytes,
        FreeBytes = s.FreeBytes,
        Disks = s.Disks,
        HostSlot = s.HostSlot,
        HeartbeatAgeSeconds = s.HeartbeatAgeSeconds ?? -1,
        LeasesHeld = s.LeasesHeld,
        Fenced = s.Fenced,
        Problem = s.Problem ?? "",
    };

    private static void RequireName(string name)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name: missing; name the datastore"));
        }
    }

    private static RpcException NotMounted(string name) => new(new Status(StatusCode.NotFound,
        $"datastore '{name}' is not mounted on this host; mount it with DatastoreService.Mount"));
}
