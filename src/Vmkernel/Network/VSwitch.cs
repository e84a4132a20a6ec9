using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Network;

/// <summary>
/// The standard vSwitch of one host: realises port groups as Linux bridges with an uplink, an nftables policy
/// table, tc shaping and a dnsmasq, and attaches VM NICs to them as taps. The kernel is the data plane; this
/// type only issues requests through its <see cref="ICommandRunner"/> and keeps a record per port group in the
/// state directory, written before anything is created, so everything it made can be found and removed.
/// Operations are serialised: one change at a time per host.
/// </summary>
public sealed class VSwitch
{
    private const long DefaultAgeing = 30000; // centiseconds, the bridge default (300 s)
    private static readonly JsonSerializerOptions RecordJson = new() { WriteIndented = true };

    private readonly ConcurrentDictionary<string, PortGroupRecord> _records = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ICommandRunner _runner;
    private readonly ILogger _logger;

    private VSwitch(NetworkPaths paths, ICommandRunner runner, ILogger logger)
    {
        Paths = paths;
        _runner = runner;
        _logger = logger;
    }

    public NetworkPaths Paths { get; }

    public IReadOnlyList<PortGroupRecord> PortGroups => _records.Values.OrderBy(r => r.Spec.Name, StringComparer.Ordinal).ToList();

    /// <summary>Opens the vSwitch of the host whose VMkernel state lives in <paramref name="stateDirectory"/>.</summary>
    public static VSwitch Open(string stateDirectory, ICommandRunner runner, ILogger logger)
    {
        var sw = new VSwitch(NetworkPaths.Under(stateDirectory), runner, logger);
        Directory.CreateDirectory(sw.Paths.PortGroups);
        Directory.CreateDirectory(sw.Paths.Dhcp);
        foreach (var file in Directory.EnumerateFiles(sw.Paths.PortGroups, "*.json"))
        {
            try
            {
                var record = JsonSerializer.Deserialize<PortGroupRecord>(File.ReadAllText(file));
                if (record is not null && record.Spec.Name == Path.GetFileNameWithoutExtension(file))
                {
                    sw._records[record.Spec.Name] = record;
                    continue;
                }
            }
            catch (JsonException e)
            {
                logger.LogError("Ignoring {File}: {Error}", file, e.Message);
                continue;
            }
            logger.LogError("Ignoring {File}: it does not describe a port group of that name", file);
        }
        return sw;
    }

    public PortGroupRecord? Find(string name) => _records.GetValueOrDefault(name);

    /// <summary>
    /// Creates or updates a port group so that the host matches the spec. Applying the same spec twice issues no
    /// change. A spec that is invalid, or that this host cannot build, is refused before anything changes; a new
    /// port group that fails half-way is removed again.
    /// </summary>
    public async Task<PortGroupRecord> ApplyAsync(PortGroupSpec spec, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var errors = PortGroupValidator.Validate(spec, _records.Values.Select(r => r.Spec)).ToList();
            if (errors.Count > 0)
            {
                throw new VmkernelException($"port group '{spec.Name}': " + string.Join("; ", errors));
            }
            var links = await ReadLinksAsync(ct);
            var existing = Find(spec.Name);
            var (uplinkPort, uplinkCreated, mtu, underlay) = await PreflightAsync(spec, links, existing, ct);
            var record = new PortGroupRecord
            {
                Spec = spec,
                Bridge = DeviceNames.Bridge(spec.Name),
                UplinkPort = uplinkPort,
                UplinkCreated = uplinkCreated,
                NftTable = DeviceNames.NftTable(spec.Name),
                Mtu = mtu,
                Ports = existing?.Ports ?? [],
            };
            if (existing is not null && existing.Spec.SameAs(spec) && existing with { Spec = spec, Ports = record.Ports } == record
                && await IsRealisedAsync(record, links, ct))
            {
                return existing;
            }
            Save(record); // intent first: whatever exists from here on is known to be ours
            try
            {
                await ReconcileAsync(record, existing, links, underlay, ct);
            }
            catch (Exception e) when (existing is null)
            {
                _logger.LogWarning("Port group {PortGroup} failed while being created ({Error}); removing what was built", spec.Name, e.Message);
                await TearDownAsync(record, CancellationToken.None);
                throw;
            }
            _logger.LogInformation("Port group {PortGroup} applied: bridge {Bridge}, uplink {Uplink}, MTU {Mtu}", spec.Name, record.Bridge, record.UplinkPort ?? "none", record.Mtu);
            return record;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Removes a port group and everything it created on this host. Refused while VMs are attached.</summary>
    public async Task RemoveAsync(string name, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var record = Find(name) ?? throw new VmkernelException($"no port group named '{name}' on this host");
            if (record.Ports.Count > 0)
            {
                var vms = string.Join(", ", record.Ports.Select(p => p.Vm).Distinct().Order(StringComparer.Ordinal));
                throw new VmkernelException(
                    $"port group '{name}' is in use by VMs {vms}; stop or delete them (or move their NICs to another port group) first");
            }
            await TearDownAsync(record, ct);
            _logger.LogInformation("Port group {PortGroup} removed", name);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Creates the tap of a VM NIC in the port group's bridge, with the port group's policy and shaping, before
    /// QEMU starts; QEMU opens it by name. The MAC is derived from the VM and NIC names unless given.
    /// </summary>
    public async Task<NicSpec> CreateTapAsync(string vm, string nic, string portGroup, string? mac = null, CancellationToken ct = default)
    {
        if (mac is not null && !PortGroupValidator.MacPattern().IsMatch(mac))
        {
            throw new VmkernelException($"nic '{nic}' of VM '{vm}': MAC '{mac}' is not of the form 52:54:00:12:34:56");
        }
        await _gate.WaitAsync(ct);
        try
        {
            var record = Find(portGroup)
                ?? throw new VmkernelException($"nic '{nic}' of VM '{vm}': no port group named '{portGroup}' on this host; apply it first");
            var tap = DeviceNames.Tap(vm, nic);
            mac = (mac ?? DeviceNames.Mac(vm, nic)).ToLowerInvariant();
            var owner = _records.Values.SelectMany(r => r.Ports.Select(p => (r, p))).FirstOrDefault(x => x.p.Tap == tap || x.p.Mac == mac);
            if (owner.p is { } taken && !(taken.Vm == vm && taken.Nic == nic && owner.r.Spec.Name == portGroup && taken.Mac == mac))
            {
                throw new VmkernelException(
                    $"nic '{nic}' of VM '{vm}': tap {tap} or MAC {mac} is already attached to port group '{owner.r.Spec.Name}' as {taken.Vm}/{taken.Nic}; remove that tap first");
            }
            var port = new PortRecord(vm, nic, tap, mac);
            var updated = record with { Ports = record.Ports.Where(p => p.Tap != tap).Append(port).ToList() };
            Save(updated);
            try
            {
                var links = await ReadLinksAsync(ct);
                await EnsureTapAsync(updated, port, links, ct);
                await EnsureShapingAsync(updated, port, record.Spec.Shaping == updated.Spec.Shaping && links.ContainsKey(tap), ct);
                await LoadRulesetAsync(updated, ct);
            }
            catch
            {
                await RunQuietAsync(Ip("link", "del", tap), CancellationToken.None);
                Save(record);
                throw;
            }
            return new NicSpec { Name = nic, Tap = tap, Mac = mac };
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Deletes every tap of a VM, in whatever port group, and its rules. Safe to call when there are none.</summary>
    public async Task RemoveTapsAsync(string vm, CancellationToken ct = default)
    {
        await _gate.WaitAsync(ct);
        try
        {
            foreach (var record in _records.Values.Where(r => r.Ports.Any(p => p.Vm == vm)).ToList())
            {
                var updated = record with { Ports = record.Ports.Where(p => p.Vm != vm).ToList() };
                foreach (var port in record.Ports.Where(p => p.Vm == vm))
                {
                    await RunQuietAsync(Ip("link", "del", port.Tap), ct);
                }
                await LoadRulesetAsync(updated, ct);
                Save(updated);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Addresses the port groups' DHCP servers on this host leased to the VM's NICs, newest first.</summary>
    public IReadOnlyList<string> GuestAddresses(string vm)
    {
        var result = new List<string>();
        foreach (var record in _records.Values)
        {
            foreach (var port in record.Ports.Where(p => p.Vm == vm))
            {
                result.AddRange(Leases(record.Spec.Name)
                    .Where(l => l.Mac == port.Mac && l.Expires > DateTimeOffset.UtcNow)
                    .OrderByDescending(l => l.Expires)
                    .Select(l => l.Address));
            }
        }
        return result.Distinct().ToList();
    }

    public IReadOnlyList<DhcpLease> Leases(string portGroup) => DhcpLease.ReadFile(Paths.Leases(portGroup));

    /// <summary>The kernel's view of every device this host's network stack knows by name.</summary>
    public async Task<IReadOnlyDictionary<string, LinkInfo>> ReadLinksAsync(CancellationToken ct = default)
    {
        var r = await RunCheckedAsync(new CommandRequest("ip", ["-j", "-d", "link", "show"]), "read network devices", ct);
        return LinkInfo.ParseAll(r.Stdout);
    }

    /// <summary>The bridge's forwarding database entries for the VXLAN device: remote MAC -> peer it was learned from.</summary>
    public async Task<IReadOnlyList<string>> VxlanPeersAsync(string device, CancellationToken ct = default)
    {
        var r = await _runner.RunAsync(new CommandRequest("bridge", ["-j", "fdb", "show", "dev", device]), ct);
        if (!r.Ok || string.IsNullOrWhiteSpace(r.Stdout))
        {
            return [];
        }
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.EnumerateArray()
            .Where(e => e.TryGetProperty("mac", out var m) && m.GetString() == "00:00:00:00:00:00" && e.TryGetProperty("dst", out _))
            .Select(e => e.GetProperty("dst").GetString()!)
            .ToList();
    }

    public ICommandRunner Runner => _runner;

    /// <summary>True when this port group's dnsmasq runs with the arguments its spec asks for.</summary>
    public bool IsDhcpRunning(PortGroupRecord record) => DnsmasqRunning(record, out _);

    /// <summary>Bridge forwarding entries of the VXLAN device: how many remote MACs were learned behind each peer.</summary>
    public async Task<IReadOnlyDictionary<string, int>> LearnedMacsPerPeerAsync(string device, CancellationToken ct = default)
    {
        var r = await _runner.RunAsync(new CommandRequest("bridge", ["-j", "fdb", "show", "dev", device]), ct);
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!r.Ok || string.IsNullOrWhiteSpace(r.Stdout))
        {
            return result;
        }
        using var doc = JsonDocument.Parse(r.Stdout);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (e.TryGetProperty("dst", out var dst) && e.TryGetProperty("mac", out var mac) && mac.GetString() != "00:00:00:00:00:00")
            {
                var key = dst.GetString()!;
                result[key] = result.GetValueOrDefault(key) + 1;
            }
        }
        return result;
    }

    // ---- apply -------------------------------------------------------------------------------------------

    /// <summary>
    /// Host checks that need no change: the uplink NIC exists, the VXLAN endpoint is an address of this host,
    /// and no device of ours is in someone else's hands. Returns the uplink port and the MTU the segment gets.
    /// </summary>
    private async Task<(string? Port, bool Created, int Mtu, string? Underlay)> PreflightAsync(
        PortGroupSpec spec, IReadOnlyDictionary<string, LinkInfo> links, PortGroupRecord? existing, CancellationToken ct)
    {
        var bridge = DeviceNames.Bridge(spec.Name);
        if (existing is null && links.TryGetValue(bridge, out var stray) && stray.Kind != "bridge")
        {
            throw new VmkernelException($"port group '{spec.Name}': device {bridge} exists and is not a bridge; remove it (ip link del {bridge})");
        }
        var uplink = spec.Uplink;
        if (uplink.Nic is { } nic)
        {
            if (!links.TryGetValue(nic, out var nicLink))
            {
                throw new VmkernelException($"port group '{spec.Name}': uplink.nic: there is no network device '{nic}' on this host (see `ip link`)");
            }
            if (nicLink.Master is { } m && m != bridge && !(spec.VlanId is >= 1 and <= 4094))
            {
                throw new VmkernelException($"port group '{spec.Name}': uplink.nic: {nic} is already a port of {m}; free it first");
            }
            var nicMtu = SegmentMtu(spec, nicLink.Mtu, $"the MTU of uplink.nic {nic}");
            if (spec.VlanId is >= 1 and <= 4094)
            {
                return (DeviceNames.Vlan(spec.Name), true, nicMtu, nic);
            }
            return (nic, false, nicMtu, nic);
        }
        if (uplink.Vxlan is { } vx)
        {
            var underlay = await FindAddressOwnerAsync(vx.Local, ct)
                ?? throw new VmkernelException(
                    $"port group '{spec.Name}': uplink.vxlan.local: {vx.Local} is not an address of this host; give the address of the NIC that reaches the peers");
            var underlayMtu = links.TryGetValue(underlay, out var u) ? u.Mtu : 1500;
            return (DeviceNames.Vxlan(spec.Name), true,
                SegmentMtu(spec, underlayMtu - VxlanOverhead, $"the MTU of the underlay {underlay} ({underlayMtu}) minus {VxlanOverhead} bytes of VXLAN encapsulation"),
                underlay);
        }
        return (null, false, spec.Mtu ?? 1500, null);
    }

    /// <summary>The asked MTU if the uplink carries it whole: a larger one would make the kernel fragment or drop guest frames.</summary>
    private static int SegmentMtu(PortGroupSpec spec, int most, string why)
    {
        if (spec.Mtu is { } asked && asked > most)
        {
            throw new VmkernelException(
                $"port group '{spec.Name}': mtu: {asked} is more than the uplink carries without fragmenting ({most}, {why}); lower mtu or raise the uplink's MTU");
        }
        return spec.Mtu ?? most;
    }

    /// <summary>Outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 bytes around every guest frame.</summary>
    public const int VxlanOverhead = 50;

    private async Task<bool> IsRealisedAsync(PortGroupRecord record, IReadOnlyDictionary<string, LinkInfo> links, CancellationToken ct)
    {
        if (!links.TryGetValue(record.Bridge, out var br) || !br.AdminUp)
        {
            return false;
        }
        if (record.UplinkPort is { } up && (!links.TryGetValue(up, out var u) || u.Master != record.Bridge || !u.AdminUp))
        {
            return false;
        }
        if (record.Ports.Any(p => !links.TryGetValue(p.Tap, out var t) || t.Master != record.Bridge))
        {
            return false;
        }
        if (!await TableExistsAsync(record.NftTable, ct))
        {
            return false;
        }
        if (record.Spec.Ipam is not null && !DnsmasqRunning(record, out _))
        {
            return false;
        }
        if (record.Spec.Uplink.Vxlan is { } vx)
        {
            var peers = await VxlanPeersAsync(record.UplinkPort!, ct);
            if (!peers.Order().SequenceEqual(vx.Peers.Distinct().Order()))
            {
                return false;
            }
        }
        return true;
    }

    private async Task ReconcileAsync(PortGroupRecord record, PortGroupRecord? existing, IReadOnlyDictionary<string, LinkInfo> links,
        string? underlay, CancellationToken ct)
    {
        var spec = record.Spec;
        // A changed uplink: let go of the old one first (delete what we created, free a NIC we borrowed).
        if (existing?.UplinkPort is { } oldPort && (oldPort != record.UplinkPort || !UplinkMatches(record, links)))
        {
            await ReleaseUplinkAsync(existing, links, ct);
            links = await ReadLinksAsync(ct);
        }
        // The uplink device comes first: it is what a host is most likely unable to build, and nothing else
        // exists yet when it fails.
        if (record.UplinkCreated && !links.ContainsKey(record.UplinkPort!))
        {
            await CreateUplinkAsync(record, underlay!, ct);
        }
        if (!links.TryGetValue(record.Bridge, out var bridge))
        {
            await RunCheckedAsync(Ip("link", "add", record.Bridge, "type", "bridge"), $"create bridge {record.Bridge}", ct,
                kernelFeature: "bridges (module bridge, CONFIG_BRIDGE)");
            bridge = new LinkInfo { Name = record.Bridge, Kind = "bridge", AgeingTime = DefaultAgeing };
        }
        // Promiscuous Accept: the bridge floods every frame to every port (ageing 0 = it forgets where MACs are),
        // so a VM port can see traffic between others; ports with Reject filter theirs in nftables.
        var ageing = spec.Security.Promiscuous == PolicyAction.Accept ? 0 : DefaultAgeing;
        if (bridge.AgeingTime != ageing)
        {
            await RunCheckedAsync(Ip("link", "set", record.Bridge, "type", "bridge", "ageing_time", ageing.ToString(CultureInfo.InvariantCulture)),
                $"set ageing of {record.Bridge}", ct);
        }
        var mac = DeviceNames.Mac("bridge/" + spec.Name, spec.Ipam is null ? "" : IpamPlan.For(spec).ServiceAddress);
        if (!string.Equals(bridge.Mac, mac, StringComparison.OrdinalIgnoreCase))
        {
            // A bridge otherwise takes the lowest MAC of its ports, and changes it as VMs come and go.
            await RunCheckedAsync(Ip("link", "set", record.Bridge, "address", mac), $"set MAC of {record.Bridge}", ct);
        }
        if (bridge.Mtu != record.Mtu)
        {
            await RunCheckedAsync(Ip("link", "set", record.Bridge, "mtu", Num(record.Mtu)), $"set MTU of {record.Bridge}", ct);
        }
        if (record.UplinkPort is { } port)
        {
            links.TryGetValue(port, out var up);
            if (record.UplinkCreated && up?.Mtu != record.Mtu)
            {
                await RunCheckedAsync(Ip("link", "set", port, "mtu", Num(record.Mtu)), $"set MTU of {port}", ct);
            }
            if (up?.Master != record.Bridge)
            {
                await RunCheckedAsync(Ip("link", "set", port, "master", record.Bridge), $"attach {port} to {record.Bridge}", ct);
            }
            if (up is not { AdminUp: true })
            {
                await RunCheckedAsync(Ip("link", "set", port, "up"), $"bring {port} up", ct);
            }
        }
        if (spec.Uplink.Vxlan is { } vx)
        {
            await ReconcilePeersAsync(record.UplinkPort!, vx, ct);
        }
        if (!bridge.AdminUp)
        {
            await RunCheckedAsync(Ip("link", "set", record.Bridge, "up"), $"bring {record.Bridge} up", ct);
        }
        await ReconcileAddressAsync(record, ct);
        foreach (var p in record.Ports)
        {
            await EnsureTapAsync(record, p, links, ct);
            await EnsureShapingAsync(record, p, existing?.Spec.Shaping == spec.Shaping && links.ContainsKey(p.Tap), ct);
        }
        await LoadRulesetAsync(record, ct);
        await ReconcileDnsmasqAsync(record, ct);
    }

    private static bool UplinkMatches(PortGroupRecord record, IReadOnlyDictionary<string, LinkInfo> links)
    {
        if (!record.UplinkCreated || record.UplinkPort is null || !links.TryGetValue(record.UplinkPort, out var l))
        {
            return true; // nothing of ours to compare (a NIC, or not created yet)
        }
        if (record.Spec.Uplink.Vxlan is { } vx)
        {
            return l.Kind == "vxlan" && l.VxlanId == vx.Vni && l.VxlanLocal == vx.Local && l.VxlanPort == vx.DstPort;
        }
        return l.Kind == "vlan" && l.VlanId == record.Spec.VlanId && l.Parent == record.Spec.Uplink.Nic;
    }

    private async Task CreateUplinkAsync(PortGroupRecord record, string underlay, CancellationToken ct)
    {
        var spec = record.Spec;
        var name = record.UplinkPort!;
        if (spec.Uplink.Vxlan is { } vx)
        {
            await RunCheckedAsync(
                Ip("link", "add", name, "type", "vxlan", "id", Num(vx.Vni), "local", vx.Local, "dstport", Num(vx.DstPort), "dev", underlay),
                $"port group '{spec.Name}': uplink.vxlan: create VXLAN {vx.Vni} on {underlay}", ct,
                kernelFeature: "VXLAN devices (module vxlan, CONFIG_VXLAN)");
            return;
        }
        await RunCheckedAsync(
            Ip("link", "add", "link", spec.Uplink.Nic!, "name", name, "type", "vlan", "id", Num(spec.VlanId)),
            $"port group '{spec.Name}': vlanId: VLAN {spec.VlanId} needs an 802.1Q sub-interface of uplink.nic {spec.Uplink.Nic}", ct,
            kernelFeature: "802.1Q VLAN devices (module 8021q, CONFIG_VLAN_8021Q); on this host use VLAN 0, 4095 or a VXLAN uplink");
    }

    private async Task ReconcilePeersAsync(string device, VxlanUplink vx, CancellationToken ct)
    {
        var current = await VxlanPeersAsync(device, ct);
        foreach (var peer in vx.Peers.Distinct().Except(current))
        {
            await RunCheckedAsync(new CommandRequest("bridge", ["fdb", "append", "00:00:00:00:00:00", "dev", device, "dst", peer]),
                $"add VXLAN peer {peer}", ct);
        }
        foreach (var gone in current.Except(vx.Peers))
        {
            await RunCheckedAsync(new CommandRequest("bridge", ["fdb", "del", "00:00:00:00:00:00", "dev", device, "dst", gone]),
                $"remove VXLAN peer {gone}", ct);
        }
    }

    private async Task ReconcileAddressAsync(PortGroupRecord record, CancellationToken ct)
    {
        var desired = record.Spec.Ipam is null ? null : $"{IpamPlan.For(record.Spec).ServiceAddress}/{Num(IpamPlan.For(record.Spec).Prefix)}";
        var r = await RunCheckedAsync(Ip("-j", "-4", "addr", "show", "dev", record.Bridge), $"read addresses of {record.Bridge}", ct);
        var current = new List<string>();
        if (!string.IsNullOrWhiteSpace(r.Stdout))
        {
            using var doc = JsonDocument.Parse(r.Stdout);
            foreach (var link in doc.RootElement.EnumerateArray())
            {
                if (link.TryGetProperty("addr_info", out var infos))
                {
                    current.AddRange(infos.EnumerateArray().Select(a => $"{a.GetProperty("local").GetString()}/{a.GetProperty("prefixlen").GetInt32()}"));
                }
            }
        }
        foreach (var stale in current.Where(a => a != desired))
        {
            await RunCheckedAsync(Ip("addr", "del", stale, "dev", record.Bridge), $"remove address {stale} from {record.Bridge}", ct);
        }
        if (desired is not null && !current.Contains(desired))
        {
            await RunCheckedAsync(Ip("addr", "add", desired, "dev", record.Bridge), $"add address {desired} to {record.Bridge}", ct);
        }
    }

    private async Task EnsureTapAsync(PortGroupRecord record, PortRecord port, IReadOnlyDictionary<string, LinkInfo> links, CancellationToken ct)
    {
        links.TryGetValue(port.Tap, out var tap);
        if (tap is null)
        {
            // Persistent, so it exists before QEMU opens it by name and outlives a QEMU restart.
            await RunCheckedAsync(Ip("tuntap", "add", "dev", port.Tap, "mode", "tap"), $"create tap {port.Tap} for {port.Vm}/{port.Nic}", ct,
                kernelFeature: "tap devices (module tun, CONFIG_TUN)");
        }
        if (tap?.Mtu != record.Mtu)
        {
            await RunCheckedAsync(Ip("link", "set", port.Tap, "mtu", Num(record.Mtu)), $"set MTU of {port.Tap}", ct);
        }
        if (tap?.Master != record.Bridge)
        {
            await RunCheckedAsync(Ip("link", "set", port.Tap, "master", record.Bridge), $"attach {port.Tap} to {record.Bridge}", ct);
        }
        if (tap is not { AdminUp: true })
        {
            await RunCheckedAsync(Ip("link", "set", port.Tap, "up"), $"bring {port.Tap} up", ct);
        }
    }

    /// <summary>tbf on the tap's egress queue: what the bridge sends toward the guest.</summary>
    private async Task EnsureShapingAsync(PortGroupRecord record, PortRecord port, bool unchanged, CancellationToken ct)
    {
        if (unchanged)
        {
            return;
        }
        if (record.Spec.Shaping is { } s)
        {
            await RunCheckedAsync(new CommandRequest("tc", TbfArgs(port.Tap, s)), $"shape {port.Tap}", ct,
                kernelFeature: "the tbf qdisc (module sch_tbf, CONFIG_NET_SCH_TBF)");
        }
        else
        {
            await RunQuietAsync(new CommandRequest("tc", ["qdisc", "del", "dev", port.Tap, "root"]), ct);
        }
    }

    internal static IReadOnlyList<string> TbfArgs(string tap, TrafficShaping s)
    {
        var args = new List<string>
        {
            "qdisc", "replace", "dev", tap, "root", "tbf",
            "rate", $"{Num(s.AverageKbps)}kbit",
            "burst", Num(s.BurstKB * 1024),
            "latency", "50ms",
        };
        if (s.PeakKbps > s.AverageKbps)
        {
            // With a peak rate tbf needs the size of its second bucket: one frame.
            args.AddRange(["peakrate", $"{Num(s.PeakKbps)}kbit", "mtu", "2048"]);
        }
        return args;
    }

    private async Task LoadRulesetAsync(PortGroupRecord record, CancellationToken ct) =>
        await RunCheckedAsync(new CommandRequest("nft", ["-f", "-"], NftRuleset.Render(record)),
            $"load nftables table {record.NftTable}", ct, kernelFeature: "nftables bridge filtering (nf_tables, nft_meta_bridge)");

    private async Task<bool> TableExistsAsync(string table, CancellationToken ct)
    {
        // Listing one table by name: `list tables` builds nft's cache of every table, seconds with a hundred of them.
        var r = await _runner.RunAsync(new CommandRequest("nft", ["-j", "list", "table", "bridge", table]), ct);
        return r.Ok;
    }

    // ---- dnsmasq -------------------------------------------------------------------------------------------

    private async Task ReconcileDnsmasqAsync(PortGroupRecord record, CancellationToken ct)
    {
        var running = DnsmasqRunning(record, out var pid);
        if (record.Spec.Ipam is null)
        {
            if (pid > 0)
            {
                await StopDnsmasqAsync(record.Spec.Name, pid, ct);
            }
            return;
        }
        if (running)
        {
            return;
        }
        if (pid > 0)
        {
            await StopDnsmasqAsync(record.Spec.Name, pid, ct); // ours, with other arguments
        }
        await RunCheckedAsync(new CommandRequest("dnsmasq", DnsmasqArgs.Build(record, Paths)), $"start dnsmasq for port group '{record.Spec.Name}'", ct);
    }

    /// <summary>True when our dnsmasq for this port group runs with exactly the arguments the record asks for.</summary>
    private bool DnsmasqRunning(PortGroupRecord record, out int pid)
    {
        pid = DnsmasqPid(record.Spec.Name);
        if (pid <= 0)
        {
            return false;
        }
        var cmdline = ReadCmdline(pid);
        var desired = string.Join('\0', new[] { "dnsmasq" }.Concat(DnsmasqArgs.Build(record, Paths)));
        return cmdline.TrimEnd('\0') == desired;
    }

    /// <summary>The pid in the port group's dnsmasq pidfile, if that process is alive and is that dnsmasq.</summary>
    private int DnsmasqPid(string portGroup)
    {
        var pidFile = Paths.DnsmasqPid(portGroup);
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
        {
            return 0;
        }
        return ReadCmdline(pid).Contains("--pid-file=" + pidFile, StringComparison.Ordinal) ? pid : 0;
    }

    private async Task StopDnsmasqAsync(string portGroup, int pid, CancellationToken ct)
    {
        Qemu.ProcessInterop.kill(pid, Qemu.ProcessInterop.SIGTERM);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (File.Exists($"/proc/{pid}/cmdline") && ReadCmdline(pid).Contains(Paths.DnsmasqPid(portGroup), StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline)
            {
                Qemu.ProcessInterop.kill(pid, Qemu.ProcessInterop.SIGKILL);
                break;
            }
            await Task.Delay(20, ct); // polling for the process to exit; there is no event to wait on for a non-child
        }
        File.Delete(Paths.DnsmasqPid(portGroup));
    }

    private static string ReadCmdline(int pid)
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

    // ---- removal ---------------------------------------------------------------------------------------------

    /// <summary>Removes everything the record names; each step tolerates what is already gone.</summary>
    private async Task TearDownAsync(PortGroupRecord record, CancellationToken ct)
    {
        var name = record.Spec.Name;
        var pid = DnsmasqPid(name);
        if (pid > 0)
        {
            await StopDnsmasqAsync(name, pid, ct);
        }
        foreach (var f in new[] { Paths.DnsmasqPid(name), Paths.Leases(name), Paths.DnsmasqLog(name) })
        {
            File.Delete(f);
        }
        if (await TableExistsAsync(record.NftTable, ct))
        {
            await RunCheckedAsync(new CommandRequest("nft", ["delete", "table", "bridge", record.NftTable]), $"delete table {record.NftTable}", ct);
        }
        foreach (var port in record.Ports)
        {
            await RunQuietAsync(Ip("link", "del", port.Tap), ct);
        }
        var links = await ReadLinksAsync(ct);
        await ReleaseUplinkAsync(record, links, ct);
        if (links.ContainsKey(record.Bridge))
        {
            await RunCheckedAsync(Ip("link", "del", record.Bridge), $"delete bridge {record.Bridge}", ct);
        }
        _records.TryRemove(name, out _);
        File.Delete(Paths.Record(name));
    }

    private async Task ReleaseUplinkAsync(PortGroupRecord record, IReadOnlyDictionary<string, LinkInfo> links, CancellationToken ct)
    {
        if (record.UplinkPort is not { } port || !links.TryGetValue(port, out var link))
        {
            return;
        }
        if (record.UplinkCreated)
        {
            await RunCheckedAsync(Ip("link", "del", port), $"delete {port}", ct);
        }
        else if (link.Master == record.Bridge)
        {
            await RunCheckedAsync(Ip("link", "set", port, "nomaster"), $"detach {port} from {record.Bridge}", ct);
        }
    }

    // ---- plumbing --------------------------------------------------------------------------------------------

    private async Task<string?> FindAddressOwnerAsync(string address, CancellationToken ct)
    {
        var r = await RunCheckedAsync(Ip("-j", "-4", "addr", "show"), "read addresses", ct);
        if (string.IsNullOrWhiteSpace(r.Stdout))
        {
            return null;
        }
        using var doc = JsonDocument.Parse(r.Stdout);
        foreach (var link in doc.RootElement.EnumerateArray())
        {
            if (link.TryGetProperty("addr_info", out var infos)
                && infos.EnumerateArray().Any(a => a.TryGetProperty("local", out var l) && l.GetString() == address))
            {
                return link.GetProperty("ifname").GetString();
            }
        }
        return null;
    }

    private void Save(PortGroupRecord record)
    {
        var path = Paths.Record(record.Spec.Name);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(record, RecordJson));
        File.Move(tmp, path, overwrite: true);
        _records[record.Spec.Name] = record;
    }

    private static CommandRequest Ip(params string[] args) => new("ip", args);

    private static string Num(long n) => n.ToString(CultureInfo.InvariantCulture);

    private async Task<CommandResult> RunCheckedAsync(CommandRequest request, string what, CancellationToken ct, string? kernelFeature = null)
    {
        var r = await _runner.RunAsync(request, ct);
        if (r.Ok)
        {
            return r;
        }
        if (kernelFeature is not null && IsMissingKernelFeature(r.Stderr))
        {
            throw new VmkernelException($"{what}: this kernel has no {kernelFeature} ({request.Program} said: {r.Stderr})");
        }
        throw new VmkernelException($"{what}: `{request.Program} {string.Join(' ', request.Args)}` failed: {r.Stderr}");
    }

    private async Task RunQuietAsync(CommandRequest request, CancellationToken ct)
    {
        var r = await _runner.RunAsync(request, ct);
        if (!r.Ok)
        {
            _logger.LogDebug("{Request} failed (tolerated): {Error}", request, r.Stderr);
        }
    }

    internal static bool IsMissingKernelFeature(string stderr) =>
        stderr.Contains("Unknown device type", StringComparison.OrdinalIgnoreCase)
        || stderr.Contains("Operation not supported", StringComparison.OrdinalIgnoreCase)
        || stderr.Contains("No such file or directory", StringComparison.OrdinalIgnoreCase) && stderr.Contains("qdisc", StringComparison.OrdinalIgnoreCase)
        || stderr.Contains("Unknown qdisc", StringComparison.OrdinalIgnoreCase)
        || stderr.Contains("Could not process rule: No such file", StringComparison.OrdinalIgnoreCase);
}
