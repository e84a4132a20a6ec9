using Grpc.Core;
using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Agent;
using Vmk.NodeDaemon.Configuration;
using Vmk.Vmkernel;
using Vmk.Vmkernel.Network;
using Api = Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// PortGroupService on the host's vSwitch. Apply is idempotent (the same spec twice changes nothing in the
/// kernel). Malformed specs are INVALID_ARGUMENT with the proto field named; what this host cannot build (no
/// such NIC, no 802.1Q in the kernel, an MTU the underlay cannot carry) and removing a port group that VMs use
/// are FAILED_PRECONDITION. Removing a port group that is not here succeeds: there is nothing to remove.
/// </summary>
public sealed class PortGroupApi(VmkernelRunner vmkernel, IOptions<DaemonOptions> options, ILogger<PortGroupApi> logger) : Api.PortGroupService.PortGroupServiceBase
{
    // The VMkernel's validator speaks the manifest's camelCase names; the API's callers know the proto's.
    private static readonly (string From, string To)[] FieldNames =
    [
        ("vlanId", "vlan_id"), ("ipam.subnet", "ipam.cidr"), ("ipam.rangeStart", "ipam.range_start"), ("ipam.rangeEnd", "ipam.range_end"),
        ("uplink.vxlan.vni", "vni"), ("uplink.vxlan.peers", "vxlan_peers"), ("uplink.vxlan.local", "--overlay-address"),
        ("uplink.nic", "uplink_interface"), ("shaping.averageKbps", "traffic_shaping.average_bits_per_second"),
        ("shaping.peakKbps", "traffic_shaping.peak_bits_per_second"), ("shaping.burstKB", "traffic_shaping.burst_bytes"),
    ];

    public override async Task<Api.PortGroupStatus> Apply(Api.PortGroupSpec request, ServerCallContext context)
    {
        var network = vmkernel.Host.Network;
        var spec = await ToVmkernelAsync(request, network.Switch.Runner, context.CancellationToken);
        var errors = PortGroupValidator.Validate(spec, network.Switch.PortGroups.Select(r => r.Spec));
        if (errors.Count > 0)
        {
            throw Invalid(request.Name, errors.Select(ProtoFieldNames));
        }
        PortGroupRecord record;
        try
        {
            record = await network.ApplyAsync(spec, context.CancellationToken);
        }
        catch (VmkernelException e)
        {
            // Valid, but not buildable on this host (the vSwitch removed whatever it had begun).
            throw new RpcException(new Status(StatusCode.FailedPrecondition, ProtoFieldNames(e.Message)));
        }
        logger.LogInformation("Port group {PortGroup} applied through the API", spec.Name);
        return ToProto(record, problem: null);
    }

    public override async Task<Api.RemovePortGroupResponse> Remove(Api.PortGroupRef request, ServerCallContext context)
    {
        var network = vmkernel.Host.Network;
        if (network.Switch.Find(request.Name) is null)
        {
            return new Api.RemovePortGroupResponse();
        }
        await network.RemoveAsync(request.Name, context.CancellationToken);
        return new Api.RemovePortGroupResponse();
    }

    public override async Task<Api.ListPortGroupsResponse> List(Api.ListPortGroupsRequest request, ServerCallContext context)
    {
        var sw = vmkernel.Host.Network.Switch;
        var inspector = new PortGroupInspector(sw);
        var response = new Api.ListPortGroupsResponse();
        foreach (var record in sw.PortGroups)
        {
            var status = await inspector.StatusAsync(record.Spec.Name, context.CancellationToken);
            var pb = ToProto(record, status.Problems.Count == 0 ? null : string.Join("; ", status.Problems));
            pb.Realized = status.BridgeUp;
            response.PortGroups.Add(pb);
        }
        return response;
    }

    /// <summary>What the host has realized, from its records (no kernel reads: cheap enough for every HostInfo).</summary>
    internal static IEnumerable<Api.PortGroupStatus> Realized(VmkernelHost host) =>
        host.Network.Switch.PortGroups.Select(r => ToProto(r, problem: null));

    internal static Api.PortGroupStatus ToProto(PortGroupRecord record, string? problem) => new()
    {
        Name = record.Spec.Name,
        Realized = true,
        Bridge = record.Bridge,
        Uplink = record.UplinkPort ?? "",
        Problem = problem ?? "",
    };

    private async Task<PortGroupSpec> ToVmkernelAsync(Api.PortGroupSpec p, ICommandRunner runner, CancellationToken ct)
    {
        var invalid = new List<string>();
        var uplinkType = string.IsNullOrEmpty(p.UplinkType) ? "vxlan" : p.UplinkType;
        TrafficShaping? shaping = null;
        if (p.TrafficShaping is { Enabled: true } ts)
        {
            if (ts.AverageBitsPerSecond < 1000)
            {
                invalid.Add($"traffic_shaping.average_bits_per_second: {ts.AverageBitsPerSecond} is below 1000 (1 kbit/s)");
            }
            if (ts.PeakBitsPerSecond != 0 && ts.PeakBitsPerSecond < ts.AverageBitsPerSecond)
            {
                invalid.Add($"traffic_shaping.peak_bits_per_second: {ts.PeakBitsPerSecond} is below the average {ts.AverageBitsPerSecond}; give at least the average or 0");
            }
            if (ts.BurstBytes < 2048)
            {
                invalid.Add($"traffic_shaping.burst_bytes: {ts.BurstBytes} is below 2048: a burst smaller than one frame lets nothing through");
            }
            shaping = new TrafficShaping { AverageKbps = ts.AverageBitsPerSecond / 1000, PeakKbps = ts.PeakBitsPerSecond / 1000, BurstKB = ts.BurstBytes / 1024 };
        }
        IpamSpec? ipam = null;
        if (p.Ipam is { Cidr.Length: > 0 } i)
        {
            if (i.RangeStart.Length == 0 || i.RangeEnd.Length == 0)
            {
                invalid.Add("ipam.range_start/range_end: give the DHCP range (inside ipam.cidr), or leave ipam.cidr empty for no DHCP");
            }
            ipam = new IpamSpec { Subnet = i.Cidr, Gateway = i.Gateway.Length > 0 ? i.Gateway : null, RangeStart = i.RangeStart, RangeEnd = i.RangeEnd };
        }
        var security = p.Security is { } s
            ? new SecurityPolicy { Promiscuous = Act(s.AllowPromiscuous), MacChanges = Act(s.AllowMacChanges), ForgedTransmits = Act(s.AllowForgedTransmits) }
            : new SecurityPolicy(); // vSphere's defaults: Reject, Accept, Accept
        if (p.Mtu != 0 && p.Mtu is < 576 or > 9000)
        {
            invalid.Add($"mtu: {p.Mtu} is outside 576-9000; use 0 for the most the uplink carries");
        }
        UplinkSpec uplink = UplinkSpec.None;
        switch (uplinkType)
        {
            case "none":
                break;
            case "vlan":
                if (p.UplinkInterface.Length == 0)
                {
                    invalid.Add("uplink_interface: a vlan uplink needs the physical interface (e.g. eth1)");
                }
                uplink = UplinkSpec.OnNic(p.UplinkInterface);
                break;
            case "vxlan":
                if (p.Vni is < 0 or > 16777215)
                {
                    invalid.Add($"vni: {p.Vni} is outside 1-16777215 (0 = derived from the name)");
                }
                if (invalid.Count == 0)
                {
                    var local = await LocalEndpointAsync(p, runner, ct);
                    uplink = UplinkSpec.OnVxlan(new VxlanUplink
                    {
                        Vni = p.Vni == 0 ? DeviceNames.Vni(p.Name) : p.Vni,
                        Local = local,
                        Peers = p.VxlanPeers.Where(a => a != local).Distinct().ToList(),
                    });
                }
                break;
            default:
                invalid.Add($"uplink_type: '{p.UplinkType}' is not one of vxlan (default), vlan, none");
                break;
        }
        if (invalid.Count > 0)
        {
            throw Invalid(p.Name, invalid);
        }
        return new PortGroupSpec
        {
            Name = p.Name,
            VlanId = p.VlanId,
            Uplink = uplink,
            Security = security,
            Shaping = shaping,
            Ipam = ipam,
            Mtu = p.Mtu == 0 ? null : p.Mtu,
        };
    }

    /// <summary>
    /// This host's tunnel endpoint: --overlay-address, else the address of uplink_interface, else the source
    /// address on the route to the first peer, else the one on the default route.
    /// </summary>
    private async Task<string> LocalEndpointAsync(Api.PortGroupSpec p, ICommandRunner runner, CancellationToken ct)
    {
        if (options.Value.OverlayAddress is { Length: > 0 } configured)
        {
            return configured;
        }
        if (p.UplinkInterface.Length > 0)
        {
            return await UnderlayAddress.OfInterfaceAsync(runner, p.UplinkInterface, ct)
                ?? throw new VmkernelException(
                    $"port group '{p.Name}': uplink_interface: {p.UplinkInterface} does not exist on this host or has no IPv4 address to be the VXLAN endpoint");
        }
        foreach (var peer in p.VxlanPeers)
        {
            if (await UnderlayAddress.TowardAsync(runner, peer, ct) is { } toward)
            {
                return toward;
            }
        }
        return await UnderlayAddress.TowardAsync(runner, "192.0.2.1", ct) // TEST-NET-1: any address the default route covers
            ?? throw new VmkernelException(
                $"port group '{p.Name}': this host has no route to the VXLAN peers [{string.Join(", ", p.VxlanPeers)}] nor a default route; start vmkerneld with --overlay-address or give uplink_interface");
    }

    private static PolicyAction Act(bool allow) => allow ? PolicyAction.Accept : PolicyAction.Reject;

    private static string ProtoFieldNames(string error)
    {
        foreach (var (from, to) in FieldNames)
        {
            if (error.StartsWith(from + ":", StringComparison.Ordinal) || error.StartsWith(from + "/", StringComparison.Ordinal))
            {
                error = to + error[from.Length..];
            }
            foreach (var tail in new[] { ":", " ", "/" })
            {
                error = error.Replace(" " + from + tail, " " + to + tail, StringComparison.Ordinal);
            }
        }
        return error;
    }

    private static RpcException Invalid(string name, IEnumerable<string> errors) =>
        new(new Status(StatusCode.InvalidArgument, $"port group '{name}': " + string.Join("; ", errors)));
}
