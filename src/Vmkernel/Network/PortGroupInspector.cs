namespace Vmk.Vmkernel.Network;

/// <summary>
/// Reads the kernel's state of port groups and VM ports and turns it into status and findings a person can act
/// on ("I set a static IP and the VM cannot reach the network", "the network suddenly drops"). Only reads.
/// </summary>
public sealed class PortGroupInspector(VSwitch vswitch)
{
    public async Task<PortGroupStatus> StatusAsync(string name, CancellationToken ct = default)
    {
        var record = vswitch.Find(name) ?? throw new VmkernelException($"no port group named '{name}' on this host");
        var links = await vswitch.ReadLinksAsync(ct);
        return await StatusAsync(record, links, ct);
    }

    public async Task<IReadOnlyList<NicDiagnosis>> DiagnoseAsync(string vm, string? address = null, CancellationToken ct = default)
    {
        var records = vswitch.PortGroups.Where(r => r.Ports.Any(p => p.Vm == vm)).ToList();
        if (records.Count == 0)
        {
            throw new VmkernelException($"VM '{vm}' has no NIC on any port group of this host (see `vmctl net pg ls`)");
        }
        var links = await vswitch.ReadLinksAsync(ct);
        var result = new List<NicDiagnosis>();
        foreach (var record in records)
        {
            var status = await StatusAsync(record, links, ct);
            foreach (var port in status.Ports.Where(p => p.Vm == vm))
            {
                var findings = new List<string>();
                findings.AddRange(status.Problems);
                if (!port.Exists)
                {
                    findings.Add($"tap {port.Tap} does not exist: re-apply port group '{record.Spec.Name}' or restart the VM");
                }
                else if (!port.Carrier)
                {
                    findings.Add($"tap {port.Tap} has no carrier: the VM is not running, or its QEMU has not opened the tap");
                }
                else if (port.BridgeState != "forwarding")
                {
                    findings.Add($"bridge port {port.Tap} is {port.BridgeState}, not forwarding");
                }
                bool? inSubnet = null;
                var checkedAddress = address ?? port.Addresses.FirstOrDefault();
                if (record.Spec.Ipam is { } ipam)
                {
                    if (checkedAddress is null)
                    {
                        findings.Add($"no DHCP lease for {port.Mac} in port group '{record.Spec.Name}': the guest has not asked (no DHCP client, or a static address: pass it with --address)");
                    }
                    else if (Ipv4.TryParse(checkedAddress, out var a) && Ipv4.TryParseSubnet(ipam.Subnet, out var net, out var prefix))
                    {
                        inSubnet = Ipv4.Contains(net, prefix, a);
                        if (inSubnet == false)
                        {
                            findings.Add($"address {checkedAddress} is outside port group '{record.Spec.Name}' subnet {ipam.Subnet}: the guest cannot reach this segment's gateway or peers; use an address in {ipam.Subnet}");
                        }
                        else if (address is not null && !port.Addresses.Contains(address))
                        {
                            Ipv4.TryParse(ipam.RangeStart, out var start);
                            Ipv4.TryParse(ipam.RangeEnd, out var end);
                            if (a >= start && a <= end)
                            {
                                findings.Add($"static address {address} lies inside the DHCP range {ipam.RangeStart}-{ipam.RangeEnd}: DHCP may give it to another VM; pick one outside the range or add a reservation");
                            }
                            var owner = vswitch.Leases(record.Spec.Name).FirstOrDefault(l => l.Address == address && l.Mac != port.Mac);
                            if (owner is not null)
                            {
                                findings.Add($"address {address} is leased to {owner.Mac}: two machines share it");
                            }
                        }
                    }
                    else
                    {
                        findings.Add($"'{checkedAddress}' is not an IPv4 address");
                    }
                }
                if (record.Spec.Security.ChecksSourceMac)
                {
                    findings.Add($"info: forged transmits/MAC changes Reject: only frames from {port.Mac} leave this port; a guest that changed its MAC is cut off");
                }
                result.Add(new NicDiagnosis(vm, port, status, checkedAddress, inSubnet, findings));
            }
        }
        return result;
    }

    private async Task<PortGroupStatus> StatusAsync(PortGroupRecord record, IReadOnlyDictionary<string, LinkInfo> links, CancellationToken ct)
    {
        var problems = new List<string>();
        links.TryGetValue(record.Bridge, out var bridge);
        if (bridge is null)
        {
            problems.Add($"bridge {record.Bridge} is missing: re-apply port group '{record.Spec.Name}'");
        }
        else if (!bridge.AdminUp)
        {
            problems.Add($"bridge {record.Bridge} is down");
        }
        var uplinkUp = false;
        if (record.UplinkPort is { } up)
        {
            if (!links.TryGetValue(up, out var u))
            {
                problems.Add($"uplink {up} is missing: re-apply port group '{record.Spec.Name}'");
            }
            else
            {
                uplinkUp = u.AdminUp && (u.LowerUp || u.Kind == "vxlan");
                if (!uplinkUp)
                {
                    problems.Add($"uplink {up} is down (operstate {u.OperState}): the segment does not leave this host");
                }
                else if (u.Master != record.Bridge)
                {
                    problems.Add($"uplink {up} is not a port of {record.Bridge}");
                }
            }
        }
        var peers = new List<PeerStatus>();
        if (record.Spec.Uplink.Vxlan is { } vx && record.UplinkPort is { } vxDev)
        {
            var learned = await vswitch.LearnedMacsPerPeerAsync(vxDev, ct);
            var pings = vx.Peers.Select(async p =>
            {
                var r = await vswitch.Runner.RunAsync(new CommandRequest("ping", ["-c", "1", "-W", "1", "-I", vx.Local, p]), ct);
                return new PeerStatus(p, r.Ok, learned.GetValueOrDefault(p));
            });
            peers.AddRange(await Task.WhenAll(pings));
            foreach (var p in peers.Where(p => !p.Reachable))
            {
                problems.Add($"VXLAN peer {p.Address} does not answer ping from {vx.Local}: VMs on that host are unreachable from here");
            }
        }
        var dhcp = record.Spec.Ipam is not null && vswitch.IsDhcpRunning(record);
        if (record.Spec.Ipam is not null && !dhcp)
        {
            problems.Add($"dnsmasq for port group '{record.Spec.Name}' is not running: guests get no address; re-apply the port group");
        }
        var leases = vswitch.Leases(record.Spec.Name);
        var ports = record.Ports.Select(p =>
        {
            links.TryGetValue(p.Tap, out var tap);
            var addresses = leases.Where(l => l.Mac == p.Mac && l.Expires > DateTimeOffset.UtcNow).Select(l => l.Address).ToList();
            return new PortStatus(p.Vm, p.Nic, p.Tap, p.Mac, tap is not null, tap?.LowerUp ?? false, tap?.PortState ?? "missing", addresses);
        }).ToList();
        return new PortGroupStatus(record.Spec.Name, record.Spec.VlanId, record.Bridge, bridge?.AdminUp ?? false, record.UplinkPort, uplinkUp,
            record.Mtu, record.Spec.Ipam?.Subnet, record.Spec.Ipam is null ? null : IpamPlan.For(record.Spec).ServiceAddress, dhcp, peers, ports, problems);
    }
}
