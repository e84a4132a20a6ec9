using Vmk.Vmkernel.Network;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// VMs whose NICs name a port group, on one lab host: the VMkernel derives tap and MAC, creates the tap on the
/// port group's bridge before QEMU starts and deletes it when QEMU is gone, keeps the port across a restart of
/// the VMkernel, reports the guest's address, and refuses what cannot work.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class VmNicWiringTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(180);
    private NetworkLab _lab = null!;
    private LabVmkernel _host = null!;
    private int _subnet;

    public async Task InitializeAsync()
    {
        _lab = await NetworkLab.CreateAsync(hosts: 1);
        _host = await LabVmkernel.OpenAsync(_lab.Hosts[0]);
        _subnet = Random.Shared.Next(100, 200);
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        await _lab.DisposeAsync();
    }

    private PortGroupSpec Local(string name) => new()
    {
        Name = name,
        Ipam = new IpamSpec
        {
            Subnet = $"10.{_subnet}.0.0/24",
            Gateway = $"10.{_subnet}.0.1",
            RangeStart = $"10.{_subnet}.0.10",
            RangeEnd = $"10.{_subnet}.0.99",
            LeaseSeconds = 600,
        },
    };

    [Fact]
    public async Task A_nic_on_an_unknown_port_group_is_refused_naming_the_nic_and_the_port_group()
    {
        var e = await Assert.ThrowsAsync<VmkernelException>(() => _host.DefineAsync("lost", "nowhere"));
        Assert.Contains("nic 'eth0'", e.Message);
        Assert.Contains("port group 'nowhere'", e.Message);
        Assert.Null(_host.Vmkernel.Find("lost"));

        // Defined while the port group existed, started after it was taken away behind the VMkernel's back
        // (`vmctl net pg rm` on the state directory): the start fails the same way, and leaves no tap.
        await _host.Vmkernel.Network.ApplyAsync(Local("brief"));
        var vm = await _host.DefineAsync("late", "brief");
        await _host.Switch.RemoveAsync("brief");
        e = await Assert.ThrowsAsync<VmkernelException>(() => vm.StartAsync());
        Assert.Contains("nic 'eth0'", e.Message);
        Assert.Contains("port group 'brief'", e.Message);
        Assert.Equal(VmState.Failed, vm.State);
        Assert.Empty(_host.QemuPids());
        Assert.False((await _host.Switch.ReadLinksAsync()).ContainsKey(vm.Spec.Nics[0].Tap));
    }

    [Fact]
    public async Task A_vm_gets_its_tap_while_it_runs_reports_its_address_and_holds_its_port_group()
    {
        var record = await _host.Vmkernel.Network.ApplyAsync(Local("lan"));
        var vm = await _host.DefineAsync("web1", "lan");
        var nic = vm.Spec.Nics[0];
        Assert.Equal(DeviceNames.Mac("web1", "eth0"), nic.Mac); // stable: the same on every host and every define
        Assert.Equal(DeviceNames.Tap("web1", "eth0"), nic.Tap);
        Assert.False((await _host.Switch.ReadLinksAsync()).ContainsKey(nic.Tap)); // no tap before the VM runs

        await vm.StartAsync();
        var links = await _host.Switch.ReadLinksAsync();
        Assert.Equal(record.Bridge, links[nic.Tap].Master);
        Assert.Contains("UP", await _host.Sh($"ip link show dev {nic.Tap}"));

        // The guest's DHCP address reaches the VM's status, with the subnet's prefix.
        var addresses = await EventuallyAsync(() => vm.GuestAddresses.SingleOrDefault()?.Addresses.Count > 0 ? vm.GuestAddresses : null);
        var eth0 = Assert.Single(addresses);
        Assert.Equal(("eth0", nic.Mac, "lan"), (eth0.Nic, eth0.Mac, eth0.PortGroup));
        Assert.Matches($@"^10\.{_subnet}\.0\.\d+/24$", eth0.Addresses[0]);
        var address = eth0.Addresses[0].Split('/')[0];
        Assert.Contains(_host.Switch.Leases("lan"), l => l.Mac == nic.Mac && l.Address == address);
        await _host.Sh($"ping -c 1 -w 30 {address}");

        // A port group that VMs use cannot be removed, running or not.
        var inUse = await Assert.ThrowsAsync<VmkernelException>(() => _host.Vmkernel.Network.RemoveAsync("lan"));
        Assert.Contains("web1", inUse.Message);

        // A restarted VMkernel re-adopts the VM with its port, and the guest stays reachable.
        var pid = vm.Pid;
        await _host.ReopenAsync();
        vm = _host.Vmkernel.Get("web1");
        Assert.Equal((VmState.Running, pid), (vm.State, vm.Pid));
        Assert.Contains(_host.Switch.Find("lan")!.Ports, p => p.Vm == "web1" && p.Tap == nic.Tap);
        await _host.Sh($"ping -c 1 -w 30 {address}");

        // Powered off: the tap is gone with QEMU, and the guest has no address any more.
        await _host.StopAsync(vm);
        Assert.False((await _host.Switch.ReadLinksAsync()).ContainsKey(nic.Tap));
        Assert.Empty(_host.Switch.Find("lan")!.Ports);
        Assert.Empty(vm.GuestAddresses);
        await Assert.ThrowsAsync<VmkernelException>(() => _host.Vmkernel.Network.RemoveAsync("lan"));

        // Deleted: the port group can go, and nothing of it is left in the host.
        await _host.Vmkernel.DeleteAsync("web1");
        await _host.Vmkernel.Network.RemoveAsync("lan");
        Assert.DoesNotMatch(@"\bvmk[bxvt][0-9a-f]{8}\b", await _host.Sh("ip -o link show")); // bridges, uplinks, taps
        Assert.DoesNotContain("vmk_", await _host.Sh("nft list tables"));
        Assert.Empty(ProcessesNaming(_host.Switch.Paths.DnsmasqPid("lan")));
    }

    [Fact]
    public async Task Taps_of_a_vm_that_died_while_no_vmkernel_watched_are_removed_on_restart()
    {
        await _host.Vmkernel.Network.ApplyAsync(Local("lan"));
        var vm = await _host.DefineAsync("crash1", "lan");
        await vm.StartAsync();
        var tap = vm.Spec.Nics[0].Tap;
        Assert.True((await _host.Switch.ReadLinksAsync()).ContainsKey(tap));

        await _host.Vmkernel.DisposeAsync(); // lets go of the VM, which keeps running
        using (var qemu = System.Diagnostics.Process.GetProcessById(Assert.Single(_host.QemuPids())))
        {
            qemu.Kill();
            await qemu.WaitForExitAsync().WaitAsync(Deadline);
        }
        await _host.ReopenAsync();

        Assert.Equal(VmState.Failed, _host.Vmkernel.Get("crash1").State);
        Assert.False((await _host.Switch.ReadLinksAsync()).ContainsKey(tap));
        Assert.Empty(_host.Switch.Find("lan")!.Ports);
    }

    private static IReadOnlyList<int> ProcessesNaming(string text) =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && NetworkLab.Runs(pid) && Cmdline(pid).Contains(text, StringComparison.Ordinal))
            .ToList();

    private static string Cmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    private static async Task<T> EventuallyAsync<T>(Func<T?> probe) where T : class
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            if (probe() is { } value)
            {
                return value;
            }
            Assert.True(DateTime.UtcNow < deadline, "the condition did not come true within the deadline");
            await Task.Delay(200); // polling a status computed from files the guest's DHCP exchange writes
        }
    }
}
