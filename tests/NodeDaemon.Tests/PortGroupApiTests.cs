using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.NodeDaemon.Protos;
using Net = Vmk.Vmkernel.Network;

namespace Vmk.NodeDaemon.Tests;

/// <summary>
/// Port groups through the daemon's API, and a real guest on one. The daemon runs in the machine's own network
/// namespace, so these port groups have no uplink (a host-local segment: a bridge, its rules and a dnsmasq, no
/// device toward the machine's network); disposal removes whatever a failed test left of them.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class PortGroupApiTests : IAsyncLifetime
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);
    private readonly TestHost _host = new();
    private readonly int _subnet = Random.Shared.Next(16, 31);
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..6];
    private DaemonClient _client = null!;

    public async Task InitializeAsync() => _client = _host.Connect(await _host.StartDaemonAsync());

    public async Task DisposeAsync()
    {
        _client.Dispose();
        // TestHost stops the daemon and QEMUs and removes the port groups left in the machine's namespace.
        await _host.DisposeAsync();
    }

    private PortGroupSpec Segment(string name, int subnet) => new()
    {
        Name = name,
        UplinkType = "none",
        Ipam = new Ipam { Cidr = $"10.{subnet}.77.0/24", Gateway = $"10.{subnet}.77.1", RangeStart = $"10.{subnet}.77.10", RangeEnd = $"10.{subnet}.77.99" },
    };

    [Fact]
    public async Task Bad_port_groups_are_refused_naming_the_field_and_nothing_is_built()
    {
        var name = $"bad-{_suffix}";
        async Task<RpcException> Refused(PortGroupSpec spec, StatusCode code)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => _client.PortGroups.ApplyAsync(spec).ResponseAsync);
            Assert.Equal(code, e.StatusCode);
            return e;
        }

        var vlan = Segment(name, _subnet);
        vlan.VlanId = 5000;
        Assert.Contains("vlan_id: 5000", (await Refused(vlan, StatusCode.InvalidArgument)).Status.Detail);

        var range = Segment(name, _subnet);
        range.Ipam.RangeEnd = $"10.{_subnet}.78.20";
        Assert.Contains("ipam.range_end", (await Refused(range, StatusCode.InvalidArgument)).Status.Detail);

        var type = Segment(name, _subnet);
        type.UplinkType = "token-ring";
        Assert.Contains("uplink_type", (await Refused(type, StatusCode.InvalidArgument)).Status.Detail);

        var nic = Segment(name, _subnet);
        nic.UplinkType = "vlan";
        nic.UplinkInterface = "nosuchnic0";
        nic.VlanId = 100;
        Assert.Contains("uplink_interface", (await Refused(nic, StatusCode.FailedPrecondition)).Status.Detail);

        await _client.PortGroups.ApplyAsync(Segment($"first-{_suffix}", _subnet));
        var overlap = Segment(name, _subnet);
        overlap.Ipam.Cidr = $"10.{_subnet}.0.0/16";
        overlap.Ipam.Gateway = $"10.{_subnet}.0.1";
        Assert.Contains($"overlaps 10.{_subnet}.77.0/24 of port group 'first-{_suffix}'", (await Refused(overlap, StatusCode.InvalidArgument)).Status.Detail);

        var listed = await _client.PortGroups.ListAsync(new ListPortGroupsRequest());
        Assert.Equal([$"first-{_suffix}"], listed.PortGroups.Select(p => p.Name));
        await _client.PortGroups.RemoveAsync(new PortGroupRef { Name = $"first-{_suffix}" });
        Assert.Empty((await _client.PortGroups.ListAsync(new ListPortGroupsRequest())).PortGroups);
    }

    [Fact]
    public async Task A_vm_on_a_port_group_applied_through_the_api_gets_an_address_in_its_status()
    {
        var name = $"lan-{_suffix}";
        var applied = await _client.PortGroups.ApplyAsync(Segment(name, _subnet + 1));
        Assert.True(applied.Realized);
        Assert.Equal(Net.DeviceNames.Bridge(name), applied.Bridge);
        Assert.Equal(applied, await _client.PortGroups.ApplyAsync(Segment(name, _subnet + 1))); // idempotent
        var info = await _client.Host.GetInfoAsync(new GetHostInfoRequest());
        Assert.Contains(info.PortGroups, p => p.Name == name && p.Realized);
        var listed = Assert.Single((await _client.PortGroups.ListAsync(new ListPortGroupsRequest())).PortGroups);
        Assert.True(listed.Realized, listed.Problem);

        var vmName = $"pg-{_suffix}";
        using var watch = new VmWatcher(_client);
        await watch.WaitForAsync(e => e.Type == VmEventType.Synced, Boot);
        var spec = TestGuest.Spec(vmName, s => s.Nics.Add(new NicSpec { Name = "eth0", PortGroup = name }));
        var defined = await _client.Vms.DefineAsync(new DefineVmRequest { Spec = spec });
        var mac = Assert.Single(defined.Spec.Nics).Mac;
        Assert.Matches("^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$", mac);
        Assert.Equal(name, defined.Spec.Nics[0].PortGroup);
        await _client.Vms.StartAsync(new VmRef { Name = vmName });

        var deadline = DateTime.UtcNow + Boot;
        NicAddress? address;
        while ((address = (await _client.Vms.GetAsync(new VmRef { Name = vmName })).Status.GuestAddresses.SingleOrDefault(a => a.Addresses.Count > 0)) is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the guest's DHCP address never reached the VM's status");
            await Task.Delay(500); // polling the API, as a client would
        }
        Assert.Equal(("eth0", mac, name), (address.Nic, address.Mac, address.PortGroup));
        // Watchers hear of it too, though the VM's state did not change.
        var seen = await watch.WaitForAsync(e => e.Vm.Spec.Name == vmName && e.Vm.Status.GuestAddresses.Any(a => a.Addresses.Count > 0), Boot);
        Assert.Equal(VmState.Running, seen.Vm.Status.State);
        Assert.Matches($@"^10\.{_subnet + 1}\.77\.\d+/24$", address.Addresses[0]);

        var inUse = await Assert.ThrowsAsync<RpcException>(() => _client.PortGroups.RemoveAsync(new PortGroupRef { Name = name }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, inUse.StatusCode);
        Assert.Contains(vmName, inUse.Status.Detail);

        await _client.Vms.StopAsync(new VmRef { Name = vmName });
        await _client.Vms.DeleteAsync(new VmRef { Name = vmName });
        await _client.PortGroups.RemoveAsync(new PortGroupRef { Name = name });
        await _client.PortGroups.RemoveAsync(new PortGroupRef { Name = name }); // nothing left to remove: still fine
        Assert.Empty((await _client.PortGroups.ListAsync(new ListPortGroupsRequest())).PortGroups);
        Assert.Empty((await _client.Host.GetInfoAsync(new GetHostInfoRequest())).PortGroups);
        Assert.False(Directory.Exists($"/sys/class/net/{Net.DeviceNames.Bridge(name)}"));
        Assert.False(Directory.Exists($"/sys/class/net/{Net.DeviceNames.Tap(vmName, "eth0")}"));
    }
    [Fact]
    public async Task A_restarted_daemon_keeps_its_port_groups_and_the_running_vms_ports()
    {
        var name = $"keep-{_suffix}";
        var vmName = $"pk-{_suffix}";
        var applied = await _client.PortGroups.ApplyAsync(Segment(name, _subnet + 2));
        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec(vmName, s => s.Nics.Add(new NicSpec { Name = "eth0", PortGroup = name })) });
        var started = await _client.Vms.StartAsync(new VmRef { Name = vmName });
        var tap = Net.DeviceNames.Tap(vmName, "eth0");
        Assert.True(Directory.Exists($"/sys/class/net/{tap}"));

        await _host.Current!.KillAsync(); // a crash: nothing is cleaned up
        _client.Dispose();
        _client = _host.Connect(await _host.StartDaemonAsync());

        var listed = Assert.Single((await _client.PortGroups.ListAsync(new ListPortGroupsRequest())).PortGroups);
        Assert.Equal((name, true, applied.Bridge), (listed.Name, listed.Realized, listed.Bridge));
        var vm = await _client.Vms.GetAsync(new VmRef { Name = vmName });
        Assert.Equal((VmState.Running, started.Status.QemuPid), (vm.Status.State, vm.Status.QemuPid));
        Assert.True(Directory.Exists($"/sys/class/net/{tap}"));
        Assert.Equal(applied, await _client.PortGroups.ApplyAsync(Segment(name, _subnet + 2))); // still the same, nothing to do
        Assert.Equal(StatusCode.FailedPrecondition, (await Assert.ThrowsAsync<RpcException>(() => _client.PortGroups.RemoveAsync(new PortGroupRef { Name = name }).ResponseAsync)).StatusCode);

        await _client.Vms.StopAsync(new VmRef { Name = vmName });
        Assert.False(Directory.Exists($"/sys/class/net/{tap}"));
        await _client.Vms.DeleteAsync(new VmRef { Name = vmName });
        await _client.PortGroups.RemoveAsync(new PortGroupRef { Name = name });
        Assert.False(Directory.Exists($"/sys/class/net/{applied.Bridge}"));
    }
}
