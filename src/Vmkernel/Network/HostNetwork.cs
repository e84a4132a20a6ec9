using System.Text;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Network;

/// <summary>
/// The host's vSwitch as the VMkernel uses it for its VMs: NICs on port groups get their tap (with the port
/// group's policy and shaping) right before QEMU starts and lose it when QEMU is gone; a port group a VM names
/// cannot be removed; the addresses the guest got reach the VM's status.
/// </summary>
public sealed class HostNetwork
{
    private readonly Func<IEnumerable<VirtualMachine>> _vms;
    private readonly ILogger _logger;

    internal HostNetwork(VSwitch vswitch, Func<IEnumerable<VirtualMachine>> vms, ILogger logger)
    {
        Switch = vswitch;
        _vms = vms;
        _logger = logger;
    }

    public VSwitch Switch { get; }

    /// <summary>
    /// Fills in what the VMkernel derives for a NIC on a port group: the tap name and, unless given, the MAC,
    /// both stable per VM and NIC name. A NIC with a tap of its own keeps it and gets a derived MAC if it has none.
    /// </summary>
    public static VmSpec Normalize(VmSpec spec)
    {
        if (spec.Nics.All(n => n.Mac.Length > 0 && (n.PortGroup is null || n.Tap.Length > 0)))
        {
            return spec;
        }
        return spec with
        {
            Nics = spec.Nics.Select(n => n with
            {
                Tap = n.PortGroup is not null && n.Tap.Length == 0 ? DeviceNames.Tap(spec.Name, n.Name) : n.Tap,
                Mac = n.Mac.Length == 0 ? DeviceNames.Mac(spec.Name, n.Name) : n.Mac.ToLowerInvariant(),
            }).ToList(),
        };
    }

    /// <summary>Problems with the VM's NICs that only this host can see: port groups it does not have.</summary>
    public IReadOnlyList<string> Validate(VmSpec spec) =>
        spec.Nics
            .Where(n => n.PortGroup is { } pg && Switch.Find(pg) is null)
            .Select(n => $"nic '{n.Name}': port group '{n.PortGroup}' is not realized on this host; apply it first (vmctl net pg apply, or PortGroupService.Apply)")
            .ToList();

    /// <summary>Creates or updates a port group on this host (idempotent).</summary>
    public Task<PortGroupRecord> ApplyAsync(PortGroupSpec spec, CancellationToken ct = default) => Switch.ApplyAsync(spec, ct);

    /// <summary>Removes a port group; refused while any VM of this host has a NIC on it, running or not.</summary>
    public async Task RemoveAsync(string name, CancellationToken ct = default)
    {
        var users = UsersOf(name);
        if (users.Count > 0)
        {
            throw new VmkernelException(
                $"port group '{name}' is in use by VMs {string.Join(", ", users)}; delete them or move their NICs to another port group first");
        }
        await Switch.RemoveAsync(name, ct);
    }

    /// <summary>The VMs of this host (defined, in any state) with a NIC on the port group.</summary>
    public IReadOnlyList<string> UsersOf(string portGroup) =>
        _vms().Where(vm => vm.Spec.Nics.Any(n => n.PortGroup == portGroup)).Select(vm => vm.Name).Order(StringComparer.Ordinal).ToList();

    /// <summary>Before QEMU starts: a tap on its port group's bridge for every NIC that names one.</summary>
    internal async Task AttachAsync(VmSpec spec, CancellationToken ct)
    {
        foreach (var nic in spec.Nics.Where(n => n.PortGroup is not null))
        {
            if (Switch.Find(nic.PortGroup!) is null)
            {
                throw new VmkernelException(
                    $"VM '{spec.Name}' cannot start: nic '{nic.Name}': port group '{nic.PortGroup}' is not realized on this host; apply it first");
            }
            var made = await Switch.CreateTapAsync(spec.Name, nic.Name, nic.PortGroup!, nic.Mac.Length > 0 ? nic.Mac : null, ct);
            _logger.LogInformation("VM {Vm} NIC {Nic}: tap {Tap} ({Mac}) on port group {PortGroup}", spec.Name, nic.Name, made.Tap, made.Mac, nic.PortGroup);
        }
    }

    /// <summary>After QEMU is gone: deletes the VM's taps. Never throws: the VM's state must still settle.</summary>
    internal async Task DetachAsync(string vm)
    {
        try
        {
            await Switch.RemoveTapsAsync(vm, CancellationToken.None);
        }
        catch (Exception e) when (e is VmkernelException or IOException)
        {
            _logger.LogError("VM {Vm}: its taps could not all be removed ({Error}); `vmctl net tap rm {Vm}` retries", vm, e.Message, vm);
        }
    }

    /// <summary>
    /// After re-adoption: taps of this host's VMs whose QEMU is gone (it died while no VMkernel watched) are
    /// deleted. Ports of VMs this VMkernel does not know (taps made by hand with `vmctl net tap add`) are left alone.
    /// </summary>
    internal async Task ReleaseStrandedAsync(CancellationToken ct)
    {
        var ours = _vms().ToDictionary(vm => vm.Name, StringComparer.Ordinal);
        var stranded = Switch.PortGroups.SelectMany(r => r.Ports).Select(p => p.Vm).Distinct()
            .Where(vm => ours.TryGetValue(vm, out var v) && v.Pid is null)
            .ToList();
        foreach (var vm in stranded)
        {
            _logger.LogInformation("VM {Vm} is not running: removing the taps it left", vm);
            await DetachAsync(vm);
        }
    }

    /// <summary>
    /// What the host knows of a running VM's IPv4 addresses per NIC: leases of the port group's DHCP server on
    /// this host for the NIC's MAC (DHCP never crosses hosts, so a VM's lease is always on its own host), then
    /// what the guest reported on its console (a static address configured by the guest's own tooling, or a
    /// lease the host's dnsmasq has not written yet). Empty for a VM that is not powered on.
    /// </summary>
    public IReadOnlyList<NicAddresses> GuestAddresses(VirtualMachine vm)
    {
        if (vm.Pid is null || vm.Spec.Nics.Count == 0)
        {
            return [];
        }
        var reported = ConsoleReports(vm.Console?.Snapshot());
        var result = new List<NicAddresses>();
        for (var i = 0; i < vm.Spec.Nics.Count; i++)
        {
            var nic = vm.Spec.Nics[i];
            var record = nic.PortGroup is null ? null : Switch.Find(nic.PortGroup);
            var addresses = new List<string>();
            if (record is not null)
            {
                addresses.AddRange(Switch.Leases(record.Spec.Name)
                    .Where(l => l.Mac == nic.Mac.ToLowerInvariant() && l.Expires > DateTimeOffset.UtcNow)
                    .OrderByDescending(l => l.Expires)
                    .Select(l => l.Address));
            }
            // The guest names its NICs eth0, eth1... in device order, and VLAN sub-interfaces eth0.<vid>.
            addresses.AddRange(reported.Where(r => r.Interface == $"eth{i}" || r.Interface.StartsWith($"eth{i}.", StringComparison.Ordinal)).Select(r => r.Address));
            result.Add(new NicAddresses(nic.Name, nic.Mac, nic.PortGroup,
                addresses.Distinct().Select(a => WithPrefix(a, record)).ToList()));
        }
        return result;
    }

    /// <summary>The last <c>VMK-GUEST-IP &lt;addr&gt; [&lt;iface&gt;]</c> per interface in the console output (guest/init prints it).</summary>
    internal static IReadOnlyList<(string Interface, string Address)> ConsoleReports(byte[]? console)
    {
        if (console is null || console.Length == 0)
        {
            return [];
        }
        const string marker = "VMK-GUEST-IP ";
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Encoding.UTF8.GetString(console).Split('\n'))
        {
            var at = line.IndexOf(marker, StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }
            var fields = line[(at + marker.Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (fields.Length >= 1 && Ipv4.TryParse(fields[0], out _))
            {
                last[fields.Length >= 2 ? fields[1] : "eth0"] = fields[0];
            }
        }
        return last.Select(kv => (kv.Key, kv.Value)).ToList();
    }

    private static string WithPrefix(string address, PortGroupRecord? record)
    {
        if (record?.Spec.Ipam is { } ipam && Ipv4.TryParseSubnet(ipam.Subnet, out var net, out var prefix)
            && Ipv4.TryParse(address, out var a) && Ipv4.Contains(net, prefix, a))
        {
            return $"{address}/{prefix}";
        }
        return address;
    }
}
