using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Configuration;
using Vmk.Vmkernel.Storage;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// Reads what the API, the Host object and the metrics report about datastores from the datastores themselves
/// (superblock, heartbeat region, lease records): the on-disk truth other hosts see too.
/// </summary>
public sealed class DatastoreObserver(VmkernelRunner vmkernel, IOptions<DaemonOptions> options, ILogger<DatastoreObserver> logger)
{
    public IReadOnlyList<DatastoreSnapshot> Snapshot() =>
        vmkernel.Host.Storage.Datastores.OrderBy(d => d.Name, StringComparer.Ordinal).Select(Describe).ToList();

    public DatastoreSnapshot? Find(string name) =>
        vmkernel.Host.Storage.Datastores.FirstOrDefault(d => d.Name == name) is { } mount ? Describe(mount) : null;

    public DatastoreSnapshot Describe(MountedDatastore mount)
    {
        var ds = mount.Datastore;
        try
        {
            var info = ds.GetInfo();
            var self = info.Hosts.FirstOrDefault(h => h.Slot == ds.HostSlot);
            var hostName = options.Value.EffectiveHostName;
            var leases = ds.GetLocks().Count(l => l.Resource != "metadata"
                && (l.OwnerSlot == ds.HostSlot || l.SharedReaders.Contains(hostName, StringComparer.Ordinal)));
            return new DatastoreSnapshot(mount.Name, mount.DevicePath, info.Uuid.ToString(), info.CapacityBytes, info.FreeBytes, info.Disks,
                ds.HostSlot, self?.HeartbeatAge?.TotalSeconds, leases, ds.IsFenced, ds.IsFenced ? "fenced: this host could not renew its heartbeat in time" : self?.Problem);
        }
        catch (Exception e) when (e is VmfsException or IOException or ObjectDisposedException or Vmk.Vmkernel.VmkernelException)
        {
            logger.LogWarning("Datastore {Datastore} cannot be read: {Error}", mount.Name, e.Message);
            return new DatastoreSnapshot(mount.Name, mount.DevicePath, ds.Uuid.ToString(), 0, 0, 0, ds.HostSlot, null, 0, ds.IsFenced, e.Message);
        }
    }
}
