using k8s;
using Microsoft.Extensions.Logging;
using Prometheus;
using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Controllers.Common;
using Vmk.Operator.Controllers.Datastores;
using Vmk.Operator.Controllers.Hosts;
using Vmk.Operator.Controllers.Migrations;
using Vmk.Operator.Controllers.PortGroups;
using Vmk.Operator.Controllers.VirtualMachines;
using Vmk.Operator.NodeClients;
using Vmk.Operator.Runtime.Informer;
using Vmk.Operator.Runtime.Metrics;
using Vmk.Operator.Runtime.Reconcile;
using HostObject = Vmk.Operator.Apis.V1Alpha1.Host;

namespace Vmk.Operator;

/// <summary>
/// Every controller of vm-operator, built and wired in one place: the registration list is <see cref="All"/>
/// (add new controllers there). The wiring between them is also here: Host changes requeue the objects that
/// depend on hosts, datastore and port-group changes requeue VMs waiting for placement, VM deletions requeue
/// port groups waiting to go. No controller resyncs periodically; see docs/operator.md for the few deliberate timers.
/// </summary>
public sealed class OperatorControllers
{
    public OperatorControllers(IKubernetes client, DaemonConnectionPool daemons, ILoggerFactory loggerFactory, TimeSpan hostGrace, int workers = 4,
        RuntimeMetrics? metrics = null, CollectorRegistry? registry = null)
    {
        metrics ??= RuntimeMetrics.Default;
        var status = new StatusWriter(client);
        var events = new EventRecorder(client, loggerFactory.CreateLogger<EventRecorder>());
        var options = new ControllerOptions { Workers = workers };
        var hostApi = new CustomResourceApi<HostObject>(client, CustomObject.Group, CustomObject.Version, HostObject.Plural);
        var datastoreApi = new CustomResourceApi<Apis.V1Alpha1.Datastore>(client, CustomObject.Group, CustomObject.Version, Apis.V1Alpha1.Datastore.Plural);
        var portGroupApi = new CustomResourceApi<Apis.V1Alpha1.PortGroup>(client, CustomObject.Group, CustomObject.Version, Apis.V1Alpha1.PortGroup.Plural);
        var vmApi = new CustomResourceApi<Apis.V1Alpha1.VirtualMachine>(client, CustomObject.Group, CustomObject.Version, Apis.V1Alpha1.VirtualMachine.Plural);

        Controller<HostObject>? hostsController = null;
        Controller<Apis.V1Alpha1.Datastore>? datastoresController = null;
        Controller<Apis.V1Alpha1.PortGroup>? portGroupsController = null;
        Controller<Apis.V1Alpha1.VirtualMachine>? vmsController = null;
        Directory = new HostDirectory(() => hostsController?.Cache);

        var migrationApi = new CustomResourceApi<VirtualMachineMigration>(client, CustomObject.Group, CustomObject.Version, VirtualMachineMigration.Plural);
        Controller<VirtualMachineMigration>? migrationsController = null;
        var maintenance = new HostMaintenance(client, () => vmsController?.Cache, () => migrationsController?.Cache, status, events, loggerFactory.CreateLogger<HostMaintenance>());
        HostReconciler = new HostReconciler(status, events, hostGrace, loggerFactory.CreateLogger<HostReconciler>(), maintenance);
        hostsController = new Controller<HostObject>("host", hostApi, HostReconciler, new ControllerOptions { Workers = 1 }, metrics, loggerFactory);
        datastoresController = new Controller<Apis.V1Alpha1.Datastore>("datastore", datastoreApi,
            new DatastoreReconciler(datastoreApi, Directory, daemons, status, events, loggerFactory.CreateLogger<DatastoreReconciler>()), options, metrics, loggerFactory);
        portGroupsController = new Controller<Apis.V1Alpha1.PortGroup>("portgroup", portGroupApi,
            new PortGroupReconciler(portGroupApi, Directory, () => vmsController?.Cache, daemons, status, events, loggerFactory.CreateLogger<PortGroupReconciler>()), options, metrics, loggerFactory);
        VirtualMachineReconciler? vmReconciler = null;
        Placement = new Placement(Directory, () => vmsController?.Cache,
            (ds, host) => vmReconciler!.DatastoreMounted(ds, host), (pg, host) => vmReconciler!.PortGroupRealized(pg, host));
        vmReconciler = new VirtualMachineReconciler(vmApi, Directory, () => datastoresController.Cache, () => portGroupsController.Cache, Placement, daemons, status, events,
            loggerFactory.CreateLogger<VirtualMachineReconciler>());
        vmsController = new Controller<Apis.V1Alpha1.VirtualMachine>("virtualmachine", vmApi, vmReconciler, options, metrics, loggerFactory);
        MigrationMetrics = new MigrationMetrics(registry ?? Prometheus.Metrics.DefaultRegistry);
        migrationsController = new Controller<VirtualMachineMigration>("virtualmachinemigration", migrationApi,
            new VirtualMachineMigrationReconciler(migrationApi, () => migrationsController?.Cache, () => vmsController?.Cache, Directory, Placement, daemons, status, events,
                MigrationMetrics, key => migrationsController?.Enqueue(key), () => Synced, loggerFactory.CreateLogger<VirtualMachineMigrationReconciler>()), options, metrics, loggerFactory);
        Migrations = migrationsController;
        Watcher = new DaemonVmWatcher(Directory, daemons, vmsController.Enqueue, loggerFactory.CreateLogger<DaemonVmWatcher>());

        Hosts = hostsController;
        Datastores = datastoresController;
        PortGroups = portGroupsController;
        VirtualMachines = vmsController;
        Metrics = new OperatorMetrics(registry ?? Prometheus.Metrics.DefaultRegistry, () => vmsController.Cache, () => hostsController.Cache);
        Wire(daemons);

        // The registration list: everything that runs while this replica leads.
        All = [Hosts, Datastores, PortGroups, VirtualMachines, Migrations, Watcher];
    }

    public IReadOnlyList<IController> All { get; }

    public Controller<HostObject> Hosts { get; }

    public Controller<Apis.V1Alpha1.Datastore> Datastores { get; }

    public Controller<Apis.V1Alpha1.PortGroup> PortGroups { get; }

    public Controller<Apis.V1Alpha1.VirtualMachine> VirtualMachines { get; }

    public Controller<VirtualMachineMigration> Migrations { get; }

    public MigrationMetrics MigrationMetrics { get; }

    public DaemonVmWatcher Watcher { get; }

    public HostDirectory Directory { get; }

    public HostReconciler HostReconciler { get; }

    public Placement Placement { get; }

    public OperatorMetrics Metrics { get; }

    /// <summary>True once every informer of the current run has listed (false while not running).</summary>
    public bool Synced => new IController[] { Hosts, Datastores, PortGroups, VirtualMachines, Migrations }.All(c => c switch
    {
        Controller<VirtualMachineMigration> m => m.Informer?.HasSynced == true,
        Controller<HostObject> h => h.Informer?.HasSynced == true,
        Controller<Apis.V1Alpha1.Datastore> d => d.Informer?.HasSynced == true,
        Controller<Apis.V1Alpha1.PortGroup> p => p.Informer?.HasSynced == true,
        Controller<Apis.V1Alpha1.VirtualMachine> v => v.Informer?.HasSynced == true,
        _ => true,
    });

    private void Wire(DaemonConnectionPool daemons)
    {
        Hosts.ObjectChanged += (previous, current) =>
        {
            if (previous is null || Shape(previous) != Shape(current))
            {
                // Readiness flipped (the daemon came back, or we marked it stale): judge the heartbeat again from now.
                Hosts.Enqueue(ObjectKey.Of(current));
                Datastores.EnqueueAll();
                PortGroups.EnqueueAll();
                VirtualMachines.EnqueueAll(vm => vm.AssignedHost is null || vm.AssignedHost == current.Name);
                Watcher.Nudge();
            }
            else if (Capacity(previous) != Capacity(current))
            {
                VirtualMachines.EnqueueAll(vm => vm.AssignedHost is null);
            }
        };
        Hosts.ObjectDeleted += host =>
        {
            daemons.Forget(host.Name);
            Datastores.EnqueueAll();
            PortGroups.EnqueueAll();
            VirtualMachines.EnqueueAll(vm => vm.AssignedHost is null || vm.AssignedHost == host.Name);
            Watcher.Nudge();
        };
        Datastores.ObjectChanged += (previous, current) =>
        {
            if (previous is null || Mounts(previous) != Mounts(current))
            {
                VirtualMachines.EnqueueAll(vm => vm.AssignedHost is null && vm.Datastores.Contains(current.Name));
            }
        };
        PortGroups.ObjectChanged += (previous, current) =>
        {
            if (previous is null || !previous.RealizedHosts.SetEquals(current.RealizedHosts))
            {
                VirtualMachines.EnqueueAll(vm => vm.AssignedHost is null && vm.PortGroups.Contains(current.Name));
            }
        };
        Hosts.ObjectChanged += (previous, current) =>
        {
            if (previous is not null && CustomObject.Bool(previous.Spec, false, "maintenance") != CustomObject.Bool(current.Spec, false, "maintenance"))
            {
                Hosts.Enqueue(ObjectKey.Of(current));
            }
        };
        Migrations.ObjectChanged += (previous, current) =>
        {
            // A migration started or ended: the source host's evacuation (if any) moves on.
            if (previous?.Phase != current.Phase && CustomObject.Str(current.Status, "sourceHost") is { } source)
            {
                Hosts.Enqueue(new ObjectKey(null, source));
            }
        };
        VirtualMachines.ObjectChanged += (previous, current) =>
        {
            // A migration let the VM go (status-only, so the controller's own filter skips it): take it over where it now runs.
            if (previous is not null && CustomObject.At(previous.Status, "migration") is not null && CustomObject.At(current.Status, "migration") is null)
            {
                VirtualMachines.Enqueue(ObjectKey.Of(current));
            }
        };
        VirtualMachines.ObjectDeleted += vm =>
        {
            Placement.Forget(ObjectKey.Of(vm));
            PortGroups.EnqueueAll(pg => pg.Metadata.DeletionTimestamp is not null);
            VirtualMachines.EnqueueAll(other => other.AssignedHost is null);
        };
    }

    private static string Shape(HostObject h) =>
        $"{h.IsReady}|{h.Endpoint}|{h.Unschedulable}|{string.Join(",", (h.Metadata.Labels ?? new Dictionary<string, string>()).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value))}";

    private static string Capacity(HostObject h) =>
        $"{h.AllocatableCpuMillicores}|{h.AllocatableMemoryBytes}|{h.AllocatedCpuMillicores}|{h.AllocatedMemoryBytes}|{string.Join(",", CustomObject.Array(h.Status, "datastores").Select(d => CustomObject.Str(d, "name")))}";

    private static string Mounts(Apis.V1Alpha1.Datastore d) =>
        string.Join(",", CustomObject.Array(d.Status, "hosts").Where(h => CustomObject.Bool(h, false, "mounted")).Select(h => CustomObject.Str(h, "host")));
}
