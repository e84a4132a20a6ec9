using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// Security policy and shaping in the kernel's data path, seen from VM ports: real taps in a real bridge with
/// the real nftables and tc state, with the test in the guest's seat (<see cref="TapEndpoint"/>).
/// </summary>
public sealed class DataPathTests : IAsyncLifetime
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Arrives = TimeSpan.FromSeconds(20);
    private readonly TempStateDirectory _state = new();
    private readonly List<TapEndpoint> _endpoints = [];
    private NetworkLab _lab = null!;
    private VSwitch _sw = null!;

    public async Task InitializeAsync()
    {
        _lab = await NetworkLab.CreateAsync(hosts: 1);
        _sw = VSwitch.Open(_state.Path, new ProcessCommandRunner(_lab.Hosts[0].Namespace), NullLogger.Instance);
    }

    public async Task DisposeAsync()
    {
        foreach (var e in _endpoints)
        {
            e.Dispose();
        }
        await _lab.DisposeAsync();
        _state.Dispose();
    }

    private async Task<(TapEndpoint Port, string Mac)> PortAsync(string vm, string portGroup)
    {
        var nic = await _sw.CreateTapAsync(vm, "eth0", portGroup);
        var endpoint = TapEndpoint.Open(_lab.Hosts[0].Namespace, nic.Tap);
        _endpoints.Add(endpoint);
        // A tap's bridge port forwards once it has carrier (the endpoint is attached) and is up.
        var deadline = DateTime.UtcNow + Arrives;
        while ((await _sw.ReadLinksAsync())[nic.Tap].PortState != "forwarding" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50); // polling the kernel's port state; there is no event to wait on
        }
        return (endpoint, nic.Mac);
    }

    private static bool IsProbe(byte[] f) => Frames.EtherType(f) == 0x88b5;

    [Theory]
    [InlineData(PolicyAction.Reject)]
    [InlineData(PolicyAction.Accept)]
    public async Task Forged_transmits(PolicyAction forged)
    {
        await _sw.ApplyAsync(new PortGroupSpec { Name = "pg", Security = new SecurityPolicy { ForgedTransmits = forged } });
        var (a, macA) = await PortAsync("a", "pg");
        var (b, _) = await PortAsync("b", "pg");

        a.Send(Frames.Raw(macA, Frames.Broadcast, 60));
        Assert.NotNull(b.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macA, Arrives)); // its own MAC always passes

        a.Send(Frames.Raw("52:54:00:de:ad:01", Frames.Broadcast, 60));
        var spoofed = b.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == "52:54:00:de:ad:01", forged == PolicyAction.Reject ? Quiet : Arrives);

        if (forged == PolicyAction.Reject)
        {
            Assert.Null(spoofed);
        }
        else
        {
            Assert.NotNull(spoofed);
        }
    }

    [Theory]
    [InlineData(PolicyAction.Reject)]
    [InlineData(PolicyAction.Accept)]
    public async Task Promiscuous_mode(PolicyAction promiscuous)
    {
        await _sw.ApplyAsync(new PortGroupSpec { Name = "pg", Security = new SecurityPolicy { Promiscuous = promiscuous } });
        var (a, macA) = await PortAsync("a", "pg");
        var (b, macB) = await PortAsync("b", "pg");
        var (watcher, _) = await PortAsync("w", "pg");

        // b announces itself, so the bridge knows where its MAC is; then a sends to b.
        b.Send(Frames.Raw(macB, Frames.Broadcast, 60));
        Assert.NotNull(a.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macB, Arrives));
        Assert.NotNull(watcher.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macB, Arrives)); // broadcast reaches everyone
        a.Send(Frames.Raw(macA, macB, 60));
        Assert.NotNull(b.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macA, Arrives));

        var seen = watcher.ReceiveMatching(f => IsProbe(f) && Frames.Destination(f) == macB, promiscuous == PolicyAction.Reject ? Quiet : Arrives);
        if (promiscuous == PolicyAction.Reject)
        {
            Assert.Null(seen);
        }
        else
        {
            Assert.NotNull(seen);
        }
    }

    [Theory]
    [InlineData(4095, true)]
    [InlineData(0, false)]
    public async Task Frames_the_guest_tags_itself_pass_only_a_trunk(int vlan, bool passes)
    {
        await _sw.ApplyAsync(new PortGroupSpec { Name = "pg", VlanId = vlan });
        var (a, macA) = await PortAsync("a", "pg");
        var (b, _) = await PortAsync("b", "pg");

        a.Send(Frames.Tagged(Frames.Raw(macA, Frames.Broadcast, 60), 100));
        var seen = b.ReceiveMatching(f => Frames.Source(f) == macA && Frames.VlanId(f) == 100, passes ? Arrives : Quiet);

        Assert.Equal(passes, seen is not null);
        a.Send(Frames.Raw(macA, Frames.Broadcast, 60)); // untagged frames pass either way
        Assert.NotNull(b.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macA, Arrives));
    }

    [Fact]
    public async Task Shaping_limits_what_a_vm_port_sends_and_receives()
    {
        const long averageKbps = 2_000; // 250 KB/s
        const long burstKB = 16;
        await _sw.ApplyAsync(new PortGroupSpec { Name = "slow", Shaping = new TrafficShaping { AverageKbps = averageKbps, BurstKB = burstKB } });
        await _sw.ApplyAsync(new PortGroupSpec { Name = "fast" });
        var slow = await MeasureAsync("slow");
        var fast = await MeasureAsync("fast");

        // The bound the shaper promises: burst plus average rate over the time the transfer took, with slack for
        // the receiver's own latency. A loaded machine only makes the sender slower, never the bound tighter.
        var allowed = burstKB * 1024 + averageKbps * 1000 / 8 * slow.Seconds + 64 * 1024;
        Assert.True(slow.Bytes <= allowed, $"shaped port delivered {slow.Bytes} bytes in {slow.Seconds:F2} s; at most {allowed} allowed");
        Assert.True(fast.Bytes > 4 * slow.Bytes, $"unshaped port delivered {fast.Bytes} bytes, shaped {slow.Bytes}: shaping made no difference");
    }

    /// <summary>Sends 4 MB from one port to another as fast as the tap takes it; counts what arrives.</summary>
    private async Task<(long Bytes, double Seconds)> MeasureAsync(string portGroup)
    {
        var (tx, macTx) = await PortAsync($"{portGroup}-tx", portGroup);
        var (rx, macRx) = await PortAsync($"{portGroup}-rx", portGroup);
        rx.Send(Frames.Raw(macRx, Frames.Broadcast, 60)); // teach the bridge where rx is
        Assert.NotNull(tx.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macRx, Arrives));
        var frame = Frames.Raw(macTx, macRx, 1400);
        var clock = Stopwatch.StartNew();
        var receiver = Task.Run(() =>
        {
            long bytes = 0;
            while (rx.ReceiveMatching(f => IsProbe(f) && Frames.Source(f) == macTx, Quiet) is { } f)
            {
                bytes += f.Length;
            }
            return bytes;
        });
        for (var i = 0; i < 4 * 1024 * 1024 / 1400; i++)
        {
            tx.Send(frame);
        }
        var received = await receiver;
        return (received, clock.Elapsed.TotalSeconds - Quiet.TotalSeconds);
    }
}
