using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>How the daemon finds a host's VXLAN endpoint when it is not configured: asked of the real kernel in a lab host.</summary>
public sealed class UnderlayAddressTests : IAsyncLifetime
{
    private NetworkLab _lab = null!;

    public async Task InitializeAsync() => _lab = await NetworkLab.CreateAsync(hosts: 2);

    public async Task DisposeAsync() => await _lab.DisposeAsync();

    [Fact]
    public async Task The_endpoint_is_the_source_address_toward_the_peers_or_the_uplink_interfaces_address()
    {
        var runner = new ProcessCommandRunner(_lab.Hosts[0].Namespace);

        Assert.Equal(_lab.Hosts[0].Address, await UnderlayAddress.TowardAsync(runner, _lab.Hosts[1].Address));
        Assert.Equal(_lab.Hosts[0].Address, await UnderlayAddress.OfInterfaceAsync(runner, "uplink0"));
        Assert.Null(await UnderlayAddress.TowardAsync(runner, "198.51.100.7")); // no default route in a lab host
        Assert.Null(await UnderlayAddress.OfInterfaceAsync(runner, "nosuchnic0"));
        Assert.Null(await UnderlayAddress.OfInterfaceAsync(runner, "lo0"));
    }
}
