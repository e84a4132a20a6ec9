using System.Reflection;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Configuration;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Services;

/// <summary>HostService: what this host has, what is promised, how it runs VMs.</summary>
public sealed class HostApi(VmkernelRunner vmkernel, HostAllocation allocation, DatastoreObserver datastores, IOptions<DaemonOptions> options) : HostService.HostServiceBase
{
    public static string Version { get; } =
        typeof(HostApi).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "unknown";

    public override Task<HostInfo> GetInfo(GetHostInfoRequest request, ServerCallContext context)
    {
        var host = vmkernel.Host;
        var info = new HostInfo
        {
            Name = options.Value.EffectiveHostName,
            Version = Version,
            Capacity = ToProto(allocation.Capacity),
            Allocatable = ToProto(allocation.Allocatable),
            Allocated = ToProto(allocation.Allocated),
            Configured = ToProto(allocation.Configured),
            Accelerator = new AcceleratorInfo
            {
                Mode = host.Accelerator.Accelerator.ToString().ToLowerInvariant(),
                Reason = host.Accelerator.Reason,
            },
            Started = Timestamp.FromDateTimeOffset(vmkernel.Started),
            QemuBinary = host.QemuBinary,
        };
        foreach (var state in System.Enum.GetValues<Vmkernel.Vm.VmState>())
        {
            info.VmsByState[state.ToString()] = 0;
        }
        foreach (var vm in host.VirtualMachines)
        {
            info.VmsByState[vm.State.ToString()]++;
        }
        info.Datastores.AddRange(datastores.Snapshot().Select(DatastoreApi.ToProto));
        info.PortGroups.AddRange(PortGroupApi.Realized(host));
        return Task.FromResult(info);
    }

    internal static HostResources ToProto(ResourceAmount r) => new() { CpuMillicores = r.CpuMillicores, MemoryBytes = r.MemoryBytes };
}
