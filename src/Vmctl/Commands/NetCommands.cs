using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using Vmk.Vmkernel;
using Vmk.Vmkernel.Network;

namespace Vmk.Vmctl.Commands;

/// <summary>
/// `vmctl net`: port groups, VM ports and diagnosis on this host, working directly on the VMkernel's state
/// directory (no daemon). `--netns` runs everything inside a network namespace, as a test or bench "host".
/// </summary>
internal static class NetCommands
{
    /// <summary>Port group files and JSON output use the manifest's camelCase names and enum names as text.</summary>
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public static Command Create()
    {
        var command = new Command("net", "Port groups (the vSwitch), VM ports and network diagnosis on this host");
        var pg = new Command("pg", "Port groups: apply, remove, list, status");
        pg.Subcommands.Add(Apply());
        pg.Subcommands.Add(Remove());
        pg.Subcommands.Add(List());
        pg.Subcommands.Add(Status());
        command.Subcommands.Add(pg);
        var tap = new Command("tap", "VM ports: the tap a VM NIC uses on a port group");
        tap.Subcommands.Add(TapAdd());
        tap.Subcommands.Add(TapRemove());
        command.Subcommands.Add(tap);
        command.Subcommands.Add(Diagnose());
        return command;
    }

    private static Option<string> StateDirOption() => new("--state-dir")
    {
        Description = "VMkernel state directory (port groups live under network/)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("VMK_STATE_DIR") ?? "/run/vmkernel/vmctl",
    };

    private static Option<string?> NetnsOption() => new("--netns")
    {
        Description = "Run every kernel request inside this network namespace (/run/netns/NAME)",
    };

    private static Option<string> OutputOption() => new("--output", "-o")
    {
        Description = "Output format: table or json",
        DefaultValueFactory = _ => "table",
    };

    private static Option<bool> VerboseOption() => new("--verbose", "-v") { Description = "Log what the vSwitch does on stderr" };

    private static Command Apply()
    {
        var file = new Option<string>("--file", "-f")
        {
            Description = "JSON port group spec, or a JSON array of them (see docs/network.md); '-' reads stdin",
            Required = true,
        };
        var (state, netns, verbose) = (StateDirOption(), NetnsOption(), VerboseOption());
        var command = new Command("apply", "Create or update port groups so the host matches the spec (idempotent)") { file, state, netns, verbose };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var specs = ReadSpecs(r.GetValue(file)!);
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), r.GetValue(verbose));
            foreach (var spec in specs)
            {
                var clock = Stopwatch.StartNew();
                var record = await sw.ApplyAsync(spec, ct);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"port group {spec.Name} applied in {clock.Elapsed.TotalMilliseconds:F1} ms: bridge {record.Bridge}, uplink {record.UplinkPort ?? "none"}, MTU {record.Mtu}"));
            }
            return 0;
        }));
        return command;
    }

    private static Command Remove()
    {
        var names = new Argument<string[]>("name") { Description = "Port group(s) to remove", Arity = ArgumentArity.OneOrMore };
        var (state, netns, verbose) = (StateDirOption(), NetnsOption(), VerboseOption());
        var command = new Command("rm", "Remove port groups and everything they created on this host (refused while VMs use them)") { names, state, netns, verbose };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), r.GetValue(verbose));
            foreach (var name in r.GetValue(names)!)
            {
                await sw.RemoveAsync(name, ct);
                Console.WriteLine($"port group {name} removed");
            }
            return 0;
        }));
        return command;
    }

    private static Command List()
    {
        var (state, netns, output) = (StateDirOption(), NetnsOption(), OutputOption());
        var command = new Command("ls", "List the port groups of this host") { state, netns, output };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), verbose: false);
            var inspector = new PortGroupInspector(sw);
            var statuses = new List<PortGroupStatus>();
            foreach (var record in sw.PortGroups)
            {
                statuses.Add(await inspector.StatusAsync(record.Spec.Name, ct));
            }
            if (IsJson(r.GetValue(output)!))
            {
                Console.WriteLine(JsonSerializer.Serialize(statuses, Json));
                return 0;
            }
            var table = new Table().AddColumns("NAME", "VLAN", "UPLINK", "BRIDGE", "MTU", "SUBNET", "PORTS", "STATE");
            foreach (var s in statuses)
            {
                table.AddRow(Markup.Escape(s.Name), Num(s.VlanId), Markup.Escape(s.Uplink ?? "-"), s.Bridge, Num(s.Mtu),
                    Markup.Escape(s.Subnet ?? "-"), Num(s.Ports.Count), s.Problems.Count == 0 ? "ok" : $"{s.Problems.Count} problem(s)");
            }
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    private static Command Status()
    {
        var name = new Argument<string>("name") { Description = "Port group" };
        var (state, netns, output) = (StateDirOption(), NetnsOption(), OutputOption());
        var command = new Command("status", "Show a port group as the kernel has it: bridge, uplink, peers, ports, DHCP") { name, state, netns, output };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), verbose: false);
            var s = await new PortGroupInspector(sw).StatusAsync(r.GetValue(name)!, ct);
            if (IsJson(r.GetValue(output)!))
            {
                Console.WriteLine(JsonSerializer.Serialize(s, Json));
                return 0;
            }
            PrintStatus(s);
            return s.Problems.Count == 0 ? 0 : 3;
        }));
        return command;
    }

    private static Command TapAdd()
    {
        var vm = new Argument<string>("vm") { Description = "VM name" };
        var nic = new Argument<string>("nic") { Description = "NIC name within the VM, e.g. eth0" };
        var pg = new Argument<string>("portgroup") { Description = "Port group to attach to" };
        var mac = new Option<string?>("--mac") { Description = "MAC address (default: derived from the VM and NIC names)" };
        var (state, netns, verbose) = (StateDirOption(), NetnsOption(), VerboseOption());
        var command = new Command("add", "Create the tap of a VM NIC on a port group; prints the tap and MAC to give QEMU") { vm, nic, pg, mac, state, netns, verbose };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), r.GetValue(verbose));
            var spec = await sw.CreateTapAsync(r.GetValue(vm)!, r.GetValue(nic)!, r.GetValue(pg)!, r.GetValue(mac), ct);
            Console.WriteLine($"{spec.Tap} {spec.Mac}");
            return 0;
        }));
        return command;
    }

    private static Command TapRemove()
    {
        var vm = new Argument<string>("vm") { Description = "VM name" };
        var (state, netns, verbose) = (StateDirOption(), NetnsOption(), VerboseOption());
        var command = new Command("rm", "Delete every tap of a VM") { vm, state, netns, verbose };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), r.GetValue(verbose));
            await sw.RemoveTapsAsync(r.GetValue(vm)!, ct);
            return 0;
        }));
        return command;
    }

    private static Command Diagnose()
    {
        var vm = new Argument<string>("vm") { Description = "VM name" };
        var address = new Option<string?>("--address") { Description = "The address the guest uses (e.g. a static IP set inside it); default: its DHCP lease" };
        var (state, netns, output) = (StateDirOption(), NetnsOption(), OutputOption());
        var command = new Command("diagnose", "Why can this VM not reach the network? NIC, tap, segment, port state, subnet, uplink, peers") { vm, address, state, netns, output };
        command.SetAction(async (r, ct) => await RunAsync(async () =>
        {
            var sw = Open(r.GetValue(state)!, r.GetValue(netns), verbose: false);
            var results = await new PortGroupInspector(sw).DiagnoseAsync(r.GetValue(vm)!, r.GetValue(address), ct);
            if (IsJson(r.GetValue(output)!))
            {
                Console.WriteLine(JsonSerializer.Serialize(results, Json));
            }
            else
            {
                foreach (var d in results)
                {
                    PrintDiagnosis(d);
                }
            }
            return results.Any(d => d.Findings.Any(f => !f.StartsWith("info:", StringComparison.Ordinal))) ? 3 : 0;
        }));
        return command;
    }

    private static void PrintDiagnosis(NicDiagnosis d)
    {
        var p = d.Port;
        var s = d.PortGroup;
        Console.WriteLine($"VM {d.Vm} NIC {p.Nic} (MAC {p.Mac})");
        Console.WriteLine($"  tap          {p.Tap}: {(p.Exists ? "exists" : "MISSING")}, carrier {(p.Carrier ? "yes (VM attached)" : "no")}, bridge port {p.BridgeState}");
        Console.WriteLine($"  segment      port group {s.Name}, VLAN {s.VlanId}, bridge {s.Bridge} {(s.BridgeUp ? "up" : "DOWN")}, MTU {s.Mtu}");
        Console.WriteLine($"  uplink       {s.Uplink ?? "none (host-internal segment)"}{(s.Uplink is null ? "" : s.UplinkUp ? " up" : " DOWN")}");
        foreach (var peer in s.Peers)
        {
            Console.WriteLine($"  peer         {peer.Address}: {(peer.Reachable ? "reachable" : "UNREACHABLE")}, {peer.LearnedMacs} guest MAC(s) learned behind it");
        }
        if (s.Subnet is not null)
        {
            Console.WriteLine($"  subnet       {s.Subnet} (this host serves DHCP from {s.ServiceAddress}: {(s.DhcpRunning ? "running" : "NOT RUNNING")})");
        }
        Console.WriteLine($"  leases       {(p.Addresses.Count == 0 ? "none" : string.Join(", ", p.Addresses))}");
        if (d.CheckedAddress is not null)
        {
            Console.WriteLine($"  address      {d.CheckedAddress}: {(d.AddressInSubnet switch { true => "in the subnet", false => "OUTSIDE the subnet", null => "not checked" })}");
        }
        Console.WriteLine(d.Findings.Count == 0 ? "  findings     none: the VM's port and segment look healthy" : "  findings");
        foreach (var f in d.Findings)
        {
            Console.WriteLine($"    - {f}");
        }
    }

    private static void PrintStatus(PortGroupStatus s)
    {
        Console.WriteLine($"port group {s.Name}: VLAN {s.VlanId}, bridge {s.Bridge} {(s.BridgeUp ? "up" : "DOWN")}, uplink {s.Uplink ?? "none"}{(s.Uplink is null ? "" : s.UplinkUp ? " up" : " DOWN")}, MTU {s.Mtu}");
        if (s.Subnet is not null)
        {
            Console.WriteLine($"  subnet {s.Subnet}, service address {s.ServiceAddress}, dnsmasq {(s.DhcpRunning ? "running" : "NOT RUNNING")}");
        }
        foreach (var peer in s.Peers)
        {
            Console.WriteLine($"  peer {peer.Address}: {(peer.Reachable ? "reachable" : "UNREACHABLE")}, {peer.LearnedMacs} MAC(s) learned");
        }
        foreach (var p in s.Ports)
        {
            Console.WriteLine($"  port {p.Vm}/{p.Nic}: tap {p.Tap}, MAC {p.Mac}, {p.BridgeState}, carrier {(p.Carrier ? "yes" : "no")}, addresses {(p.Addresses.Count == 0 ? "-" : string.Join(", ", p.Addresses))}");
        }
        foreach (var problem in s.Problems)
        {
            Console.WriteLine($"  problem: {problem}");
        }
    }

    internal static IReadOnlyList<PortGroupSpec> ReadSpecs(string path)
    {
        var text = path == "-" ? Console.In.ReadToEnd() : File.ReadAllText(path);
        try
        {
            var trimmed = text.TrimStart();
            var specs = trimmed.StartsWith('[')
                ? JsonSerializer.Deserialize<List<PortGroupSpec>>(text, Json)
                : [JsonSerializer.Deserialize<PortGroupSpec>(text, Json)!];
            return specs ?? throw new FormatException($"{path}: empty port group file");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not a port group spec ({e.Message}); see docs/network.md for the format");
        }
    }

    private static VSwitch Open(string stateDir, string? netns, bool verbose)
    {
        var factory = Logging.Create(verbose ? LogLevel.Information : LogLevel.Warning);
        return VSwitch.Open(stateDir, new ProcessCommandRunner(netns), factory.CreateLogger("vswitch"));
    }

    private static bool IsJson(string output) => output.Equals("json", StringComparison.OrdinalIgnoreCase);

    private static string Num(int n) => n.ToString(CultureInfo.InvariantCulture);

    private static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (VmkernelException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
