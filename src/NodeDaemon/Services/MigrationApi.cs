using System.Threading.Channels;
using Grpc.Core;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Protos;
using Vmk.Vmkernel;
using Vmk.Vmkernel.Migration;
using MigrationPolicy = Vmk.Vmkernel.Migration.MigrationPolicy;
using MigrationProgress = Vmk.NodeDaemon.Protos.MigrationProgress;
using Vk = Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// MigrationService: the VMkernel's live migration (<see cref="LiveMigrations"/>) over gRPC, one role per call as
/// DESIGN.md section 4 orders them. The protocol's logic lives in the VMkernel; these handlers map requests,
/// progress and errors, and keep the daemon's VM bookkeeping (owners, watchers) in step as a VM arrives or leaves.
/// </summary>
public sealed class MigrationApi(
    VmkernelRunner vmkernel,
    VmSpecConverter converter,
    HostAllocation allocation,
    VmEventHub events,
    VmOwnerStore owners,
    ILogger<MigrationApi> logger) : MigrationService.MigrationServiceBase
{
    public override async Task<PrepareIncomingResponse> PrepareIncoming(PrepareIncomingRequest request, ServerCallContext context)
    {
        RequireId(request.MigrationId);
        var spec = converter.ToVmkernel(request.Spec);
        var owner = new VmOwnerRecord(request.Spec.Owner?.Namespace ?? "", request.Spec.Owner?.Name ?? "", request.Spec.Owner?.Uid ?? "");
        var host = vmkernel.Host;
        // The arriving VM's reservations are admitted like any start's (RESOURCE_EXHAUSTED when they do not fit).
        var incoming = await Run(() => host.Migrations.PrepareIncomingAsync(request.MigrationId, spec, ToPolicy(request.Policy), context.CancellationToken,
            (vm, start) => allocation.AdmitAndStartAsync(vm, start, context.CancellationToken)));
        var vm = host.Get(incoming.VmName);
        owners.Set(vm.Name, owner);
        events.Attach(vm);
        events.Publish(VmChangeKind.Defined, vm, vm.Status);
        return new PrepareIncomingResponse { IncomingUri = incoming.Uri };
    }

    public override async Task MigrateOut(MigrateOutRequest request, IServerStreamWriter<MigrationProgress> responseStream, ServerCallContext context)
    {
        RequireId(request.MigrationId);
        if (string.IsNullOrWhiteSpace(request.Vm) || string.IsNullOrWhiteSpace(request.TargetUri))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "MigrateOut needs vm and target_uri (PrepareIncoming on the target returns the URI)"));
        }
        var host = vmkernel.Host;
        var vm = host.Find(request.Vm) ?? throw new RpcException(new Status(StatusCode.NotFound, $"no VM named '{request.Vm}' on this host"));
        // Progress comes from the migration's own loop; the stream is written from here, in order, never blocking it.
        var samples = Channel.CreateBounded<Vmkernel.Migration.MigrationProgress>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropOldest });
        var progress = new ChannelProgress(samples.Writer);
        var migrate = Task.Run(() => host.Migrations.MigrateOutAsync(request.MigrationId, request.Vm, request.TargetUri, ToPolicy(request.Policy), progress, context.CancellationToken));
        _ = migrate.ContinueWith(_ => samples.Writer.TryComplete(), TaskScheduler.Default);
        // The "completed" sample arrives as soon as the source revoked its disks and released the leases, before its
        // QEMU is gone: a caller may send FinishIncoming to the target right then; the stream ends after the cleanup.
        await foreach (var sample in samples.Reader.ReadAllAsync(CancellationToken.None))
        {
            await TryWriteAsync(responseStream, ToProto(sample, sample.HandoverTime));
        }
        await Run(() => migrate);
        events.Detach(vm);
        events.Publish(VmChangeKind.Deleted, vm, vm.Status);
        ForgetOwner(vm.Name);
    }

    public override async Task<Vm> FinishIncoming(FinishIncomingRequest request, ServerCallContext context)
    {
        RequireId(request.MigrationId);
        var host = vmkernel.Host;
        var vm = await Run(() => host.Migrations.FinishIncomingAsync(request.MigrationId, context.CancellationToken));
        if (!string.IsNullOrEmpty(request.Vm) && request.Vm != vm.Name)
        {
            logger.LogWarning("FinishIncoming for migration {Migration} named VM {Asked}, but it moves VM {Vm}", request.MigrationId, request.Vm, vm.Name);
        }
        return VmSpecConverter.ToProto(vm, vm.Status, owners.Get(vm.Name));
    }

    public override async Task<CancelMigrationResponse> Cancel(CancelMigrationRequest request, ServerCallContext context)
    {
        RequireId(request.MigrationId);
        var host = vmkernel.Host;
        var vmName = host.Migrations.InProgress.TryGetValue(request.MigrationId, out var role) ? role.Vm : null;
        var found = await host.Migrations.CancelAsync(request.MigrationId, string.IsNullOrWhiteSpace(request.Reason) ? "cancelled" : request.Reason);
        if (found && role.Role == "incoming" && vmName is not null && host.Find(vmName) is null)
        {
            ForgetOwner(vmName);
        }
        return new CancelMigrationResponse { Found = found };
    }

    /// <summary>VmOwnerStore.Remove fails for a VM that never had an owner on a host that never recorded one (no directory).</summary>
    private void ForgetOwner(string vm)
    {
        if (owners.Get(vm) != VmOwnerRecord.None)
        {
            owners.Remove(vm);
        }
    }

    private static MigrationPolicy ToPolicy(Protos.MigrationPolicy? p) => p is null ? new MigrationPolicy() : new MigrationPolicy
    {
        BandwidthBytesPerSecond = p.BandwidthBytesPerSecond >= 0 ? p.BandwidthBytesPerSecond
            : throw new RpcException(new Status(StatusCode.InvalidArgument, $"bandwidth_bytes_per_second {p.BandwidthBytesPerSecond} is negative")),
        DowntimeLimit = p.DowntimeLimitMs >= 0 ? TimeSpan.FromMilliseconds(p.DowntimeLimitMs)
            : throw new RpcException(new Status(StatusCode.InvalidArgument, $"downtime_limit_ms {p.DowntimeLimitMs} is negative")),
        AutoConverge = p.AutoConverge,
        Tls = !p.DisableTls,
        NoProgressTimeout = p.NoProgressTimeoutSeconds > 0 ? TimeSpan.FromSeconds(p.NoProgressTimeoutSeconds) : TimeSpan.FromSeconds(30),
        Timeout = p.TimeoutSeconds > 0 ? TimeSpan.FromSeconds(p.TimeoutSeconds) : TimeSpan.Zero,
    };

    private static Protos.MigrationProgress ToProto(Vmkernel.Migration.MigrationProgress p, TimeSpan? handover) => new()
    {
        Phase = p.Phase,
        TransferredBytes = p.TransferredBytes,
        RemainingBytes = p.RemainingBytes,
        DirtyPagesRate = p.DirtyPagesRate,
        Iteration = p.Iteration,
        DowntimeMs = (long)(p.Downtime?.TotalMilliseconds ?? 0),
        TotalMs = (long)p.TotalTime.TotalMilliseconds,
        HandoverMs = (long)(handover?.TotalMilliseconds ?? 0),
        PausedAt = p.PausedAt is { } paused ? Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(paused) : null,
    };

    /// <summary>A caller that went away must not turn a completed migration into an error on this side.</summary>
    private async Task TryWriteAsync(IServerStreamWriter<Protos.MigrationProgress> stream, Protos.MigrationProgress message)
    {
        try
        {
            await stream.WriteAsync(message);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or OperationCanceledException)
        {
            logger.LogDebug("Migration progress not delivered: {Error}", e.Message);
        }
    }

    private static async Task<T> Run<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (MigrationException e) when (e.Kind != MigrationErrorKind.Failed)
        {
            throw new RpcException(new Status(e.Kind switch
            {
                MigrationErrorKind.Precondition => StatusCode.FailedPrecondition,
                MigrationErrorKind.InvalidArgument => StatusCode.InvalidArgument,
                _ => StatusCode.NotFound,
            }, e.Message));
        }
        catch (VmkernelException e)
        {
            throw new RpcException(new Status(StatusCode.Aborted, e.Message));
        }
    }

    private static void RequireId(string id)
    {
        if (string.IsNullOrWhiteSpace(id))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "migration_id is required: the same id on the source and the target"));
        }
    }

    private sealed class ChannelProgress(ChannelWriter<Vmkernel.Migration.MigrationProgress> writer) : IProgress<Vmkernel.Migration.MigrationProgress>
    {
        public void Report(Vmkernel.Migration.MigrationProgress value) => writer.TryWrite(value);
    }
}
