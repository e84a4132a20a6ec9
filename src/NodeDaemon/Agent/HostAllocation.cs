using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Configuration;
using Vmk.Vmkernel.Resources;
using Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// The host's resources in the terms the operator places VMs by: capacity (all CPUs, MemTotal), allocatable
/// (capacity minus what is kept back for the host itself), allocated (reservations of powered-on VMs) and
/// configured (vCPUs and memory of powered-on VMs, which may over-commit). Admission control for reservations
/// (ESXi's rule: never promise more than the host has) runs here, one start at a time.
/// </summary>
public sealed class HostAllocation(IOptions<DaemonOptions> options, VmkernelRunner vmkernel)
{
    private readonly SemaphoreSlim _admission = new(1, 1);

    public ResourceAmount Capacity => new(Environment.ProcessorCount * 1000L, vmkernel.Host.HostMemoryBytes);

    public ResourceAmount Allocatable
    {
        get
        {
            var c = Capacity;
            return new(Math.Max(0, c.CpuMillicores - options.Value.ReservedCpuMillicores), Math.Max(0, c.MemoryBytes - options.Value.ReservedMemoryBytes));
        }
    }

    public ResourceAmount Allocated => Sum(PoweredOn(), Reservation);

    public ResourceAmount Configured => Sum(PoweredOn(), vm => new(vm.Spec.Cpu.VCpus * 1000L, vm.Spec.MemoryBytes));

    public static bool IsPoweredOn(VmState state) => state is not (VmState.Stopped or VmState.Failed);

    public static ResourceAmount Reservation(VirtualMachine vm) =>
        new(vm.Spec.Resources?.CpuReservationMillicores ?? 0, vm.Spec.Resources?.MemoryReservationBytes ?? 0);

    /// <summary>
    /// Runs <paramref name="start"/> if the VM's reservations fit in what the host has not promised to other
    /// powered-on VMs; otherwise throws <see cref="AdmissionException"/> naming the short resource.
    /// </summary>
    public async Task AdmitAndStartAsync(VirtualMachine vm, Func<Task> start, CancellationToken ct)
    {
        var wanted = Reservation(vm);
        if (wanted is { CpuMillicores: 0, MemoryBytes: 0 })
        {
            await start();
            return;
        }
        await _admission.WaitAsync(ct);
        try
        {
            var allocatable = Allocatable;
            var ledger = new ReservationLedger(allocatable.CpuMillicores, allocatable.MemoryBytes);
            foreach (var other in PoweredOn().Where(o => !ReferenceEquals(o, vm)))
            {
                var r = Reservation(other);
                // Reservations of VMs already running were admitted before; record them even if the host shrank.
                ledger.TryReserve(other.Name, Math.Min(r.CpuMillicores, allocatable.CpuMillicores), Math.Min(r.MemoryBytes, allocatable.MemoryBytes), out _);
            }
            if (!ledger.TryReserve(vm.Name, wanted.CpuMillicores, wanted.MemoryBytes, out var reason))
            {
                throw new AdmissionException(reason);
            }
            await start();
        }
        finally
        {
            _admission.Release();
        }
    }

    private IEnumerable<VirtualMachine> PoweredOn() => vmkernel.Host.VirtualMachines.Where(vm => IsPoweredOn(vm.State));

    private static ResourceAmount Sum(IEnumerable<VirtualMachine> vms, Func<VirtualMachine, ResourceAmount> pick)
    {
        long cpu = 0, memory = 0;
        foreach (var vm in vms)
        {
            var r = pick(vm);
            cpu += r.CpuMillicores;
            memory += r.MemoryBytes;
        }
        return new(cpu, memory);
    }
}
