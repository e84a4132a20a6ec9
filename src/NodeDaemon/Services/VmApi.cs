using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Protos;
using Vmk.Vmkernel;
using Vk = Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// VmService: thin handlers that check the request and post it to the VM, whose own command queue runs one
/// command at a time. A command once accepted runs to its end even if the caller goes away (it is bound to the
/// daemon's lifetime, not to the call), so a dropped connection never leaves a VM half-started.
/// </summary>
public sealed class VmApi(
    VmkernelRunner vmkernel,
    VmSpecConverter converter,
    HostAllocation allocation,
    VmEventHub events,
    VmOwnerStore owners,
    IHostApplicationLifetime lifetime,
    ILogger<VmApi> logger) : VmService.VmServiceBase
{
    private static readonly SemaphoreSlim DefineGate = new(1, 1);

    public override async Task<Vm> Define(DefineVmRequest request, ServerCallContext context)
    {
        var spec = converter.ToVmkernel(request.Spec);
        var owner = new VmOwnerRecord(request.Spec.Owner?.Namespace ?? "", request.Spec.Owner?.Name ?? "", request.Spec.Owner?.Uid ?? "");
        var host = vmkernel.Host;
        await DefineGate.WaitAsync(context.CancellationToken);
        try
        {
            var existing = host.Find(spec.Name);
            if (existing is not null)
            {
                if (!request.AllowUpdate)
                {
                    throw new RpcException(new Status(StatusCode.AlreadyExists,
                        $"VM '{spec.Name}' is already defined on this host; pick another name, or set allow_update to change its spec"));
                }
                if (SameSpec(existing.Spec, spec))
                {
                    owners.Set(spec.Name, owner);
                    return Describe(existing);
                }
                if (HostAllocation.IsPoweredOn(existing.State))
                {
                    throw new RpcException(new Status(StatusCode.FailedPrecondition,
                        $"VM '{spec.Name}' is {existing.State}; stop it before changing its spec"));
                }
            }
            Vk.VirtualMachine vm;
            try
            {
                vm = await host.DefineAsync(spec, lifetime.ApplicationStopping);
            }
            catch (VmkernelException e)
            {
                // The VMkernel's own validation: every malformed field named in one message.
                throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
            }
            owners.Set(spec.Name, owner);
            events.Attach(vm);
            events.Publish(existing is null ? VmChangeKind.Defined : VmChangeKind.Changed, vm, vm.Status);
            logger.LogInformation("VM {Vm} {Action}", spec.Name, existing is null ? "defined" : "updated");
            return Describe(vm);
        }
        finally
        {
            DefineGate.Release();
        }
    }

    public override Task<Vm> Get(VmRef request, ServerCallContext context) => Task.FromResult(Describe(Require(request.Name)));

    public override Task<ListVmsResponse> List(ListVmsRequest request, ServerCallContext context)
    {
        var response = new ListVmsResponse();
        response.Vms.AddRange(vmkernel.Host.VirtualMachines.OrderBy(vm => vm.Name, StringComparer.Ordinal).Select(Describe));
        return Task.FromResult(response);
    }

    public override async Task<Vm> Start(VmRef request, ServerCallContext context)
    {
        var vm = Require(request.Name);
        if (HostAllocation.IsPoweredOn(vm.State))
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"VM '{vm.Name}' is {vm.State}; only a stopped or failed VM can be started"));
        }
        try
        {
            await allocation.AdmitAndStartAsync(vm, () => vm.StartAsync(lifetime.ApplicationStopping), lifetime.ApplicationStopping);
        }
        catch (VmkernelException e) when (vm.State == Vk.VmState.Failed)
        {
            // QEMU refused the VM or died while starting: the message carries its last words.
            throw new RpcException(new Status(StatusCode.Aborted, e.Message));
        }
        return Describe(vm);
    }

    public override Task<Vm> Shutdown(ShutdownVmRequest request, ServerCallContext context) =>
        RunAsync(request.Name, vm => vm.ShutdownAsync(request.TimeoutSeconds > 0 ? TimeSpan.FromSeconds(request.TimeoutSeconds) : null, lifetime.ApplicationStopping));

    public override Task<Vm> Stop(VmRef request, ServerCallContext context) => RunAsync(request.Name, vm => vm.StopAsync(lifetime.ApplicationStopping));

    public override Task<Vm> Kill(VmRef request, ServerCallContext context) => RunAsync(request.Name, vm => vm.KillAsync(lifetime.ApplicationStopping));

    public override Task<Vm> Reset(VmRef request, ServerCallContext context) => RunAsync(request.Name, vm => vm.ResetAsync(lifetime.ApplicationStopping));

    public override Task<Vm> Pause(VmRef request, ServerCallContext context) => RunAsync(request.Name, vm => vm.PauseAsync(lifetime.ApplicationStopping));

    public override Task<Vm> Resume(VmRef request, ServerCallContext context) => RunAsync(request.Name, vm => vm.ResumeAsync(lifetime.ApplicationStopping));

    public override async Task<DeleteVmResponse> Delete(VmRef request, ServerCallContext context)
    {
        var vm = Require(request.Name);
        await vmkernel.Host.DeleteAsync(vm.Name, lifetime.ApplicationStopping);
        events.Detach(vm);
        events.Publish(VmChangeKind.Deleted, vm, vm.Status);
        owners.Remove(vm.Name);
        logger.LogInformation("VM {Vm} deleted", vm.Name);
        return new DeleteVmResponse();
    }

    public override async Task Watch(WatchVmsRequest request, IServerStreamWriter<VmEvent> responseStream, ServerCallContext context)
    {
        var host = vmkernel.Host;
        if (request.Name.Length > 0)
        {
            Require(request.Name);
        }
        bool Wanted(Vk.VirtualMachine vm) => request.Name.Length == 0 || vm.Name == request.Name;
        var (changes, registration) = events.Watch(() => host.VirtualMachines, out var current);
        using (registration)
        {
            var ct = context.CancellationToken;
            foreach (var (vm, status) in current.Where(c => Wanted(c.Vm)).OrderBy(c => c.Vm.Name, StringComparer.Ordinal))
            {
                await responseStream.WriteAsync(new VmEvent { Type = VmEventType.Existing, Vm = Describe(vm, status) }, ct);
            }
            await responseStream.WriteAsync(new VmEvent { Type = VmEventType.Synced }, ct);
            try
            {
                await foreach (var change in changes.ReadAllAsync(ct))
                {
                    if (!Wanted(change.Vm))
                    {
                        continue;
                    }
                    var type = change.Kind switch
                    {
                        VmChangeKind.Defined => VmEventType.Defined,
                        VmChangeKind.Deleted => VmEventType.Deleted,
                        _ => VmEventType.Changed,
                    };
                    await responseStream.WriteAsync(new VmEvent { Type = type, Vm = Describe(change.Vm, change.Status) }, ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The caller went away: the registration is released on the way out.
            }
        }
    }

    public override async Task Console(IAsyncStreamReader<ConsoleInput> requestStream, IServerStreamWriter<ConsoleOutput> responseStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct))
        {
            return;
        }
        if (requestStream.Current.InputCase != ConsoleInput.InputOneofCase.Attach)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "console: the first message must be 'attach' naming the VM"));
        }
        var attach = requestStream.Current.Attach;
        var vm = Require(attach.Name);
        var console = vm.Console;
        if (!HostAllocation.IsPoweredOn(vm.State) || console is null)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"VM '{vm.Name}' is {vm.State}; start it to use its console"));
        }
        using var subscription = console.Subscribe(attach.ReplayHistory);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var input = Task.Run(async () =>
        {
            try
            {
                while (await requestStream.MoveNext(stop.Token))
                {
                    if (requestStream.Current.InputCase == ConsoleInput.InputOneofCase.Data && !requestStream.Current.Data.IsEmpty)
                    {
                        await console.WriteAsync(requestStream.Current.Data.Memory, stop.Token);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or System.Net.Sockets.SocketException or VmkernelException)
            {
                logger.LogDebug("Console input of VM {Vm} ended: {Error}", vm.Name, e.Message);
            }
        }, CancellationToken.None);
        try
        {
            await foreach (var chunk in subscription.Output.ReadAllAsync(ct))
            {
                await responseStream.WriteAsync(new ConsoleOutput { Data = ByteString.CopyFrom(chunk.Span) }, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            await stop.CancelAsync();
            await input;
        }
    }

    private async Task<Vm> RunAsync(string name, Func<Vk.VirtualMachine, Task> command)
    {
        var vm = Require(name);
        await command(vm);
        return Describe(vm);
    }

    private Vk.VirtualMachine Require(string name)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "name: missing; name the VM"));
        }
        return vmkernel.Host.Find(name)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"no VM named '{name}' on this host; List shows the VMs it has"));
    }

    private Vm Describe(Vk.VirtualMachine vm) => Describe(vm, vm.Status);

    private Vm Describe(Vk.VirtualMachine vm, Vk.VmStatus status) => VmSpecConverter.ToProto(vm, status, owners.Get(vm.Name));

    // Records compare lists by reference; the serialised form compares what the spec says.
    private static bool SameSpec(Vk.VmSpec a, Vk.VmSpec b) => JsonSerializer.Serialize(a) == JsonSerializer.Serialize(b);
}
