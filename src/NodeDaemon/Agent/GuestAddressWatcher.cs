using Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// Guest addresses change without a VM state change (a DHCP lease arrives seconds after the VM is Running), so
/// nothing would tell watchers. This looks at the running VMs' addresses every few seconds and publishes a
/// Changed event for each VM whose addresses differ from what watchers last saw.
/// </summary>
public sealed class GuestAddressWatcher(VmkernelRunner vmkernel, VmEventHub events, ILogger<GuestAddressWatcher> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    private readonly Dictionary<string, string> _seen = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval); // the leases and the console have no change event to wait on
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                Scan();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                logger.LogWarning("Reading guest addresses failed: {Error}", e.Message);
            }
        }
    }

    private void Scan()
    {
        var vms = vmkernel.Host.VirtualMachines;
        foreach (var gone in _seen.Keys.Except(vms.Select(v => v.Name)).ToList())
        {
            _seen.Remove(gone);
        }
        foreach (var vm in vms)
        {
            var key = string.Join(";", vm.GuestAddresses.Select(n => $"{n.Nic}={string.Join(',', n.Addresses)}"));
            if (_seen.TryGetValue(vm.Name, out var last) ? last == key : key.Length == 0 || vm.State is not (VmState.Running or VmState.Paused))
            {
                _seen[vm.Name] = key;
                continue;
            }
            _seen[vm.Name] = key;
            events.Publish(VmChangeKind.Changed, vm, vm.Status);
        }
    }
}
