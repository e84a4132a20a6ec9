using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmctl.Commands;

/// <summary>
/// `vmctl ds`: work on a VMFS datastore (device or file) directly, with no daemon running. Read-only commands
/// (info, ls, locks, fsck) never join the datastore; changing ones (format, disk ..., fsck --repair) join it
/// as host `--host` for the moment they run, like any other host.
/// </summary>
internal static class DsCommands
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static Command Create()
    {
        var command = new Command("ds", "Work on a VMFS datastore (device or file) directly, with no daemon running");
        command.Subcommands.Add(Format());
        command.Subcommands.Add(Info());
        command.Subcommands.Add(Ls());
        command.Subcommands.Add(Locks());
        command.Subcommands.Add(Fsck());
        command.Subcommands.Add(Disk());
        return command;
    }

    private static Argument<string> PathArgument() => new("path") { Description = "Block device or datastore file" };

    private static Option<string> OutputOption() => new("--output", "-o")
    {
        Description = "Output format: table or json",
        DefaultValueFactory = _ => "table",
    };

    private static Option<string> HostOption() => new("--host")
    {
        Description = "Host name this command joins the datastore as",
        DefaultValueFactory = _ => $"vmctl-{Environment.MachineName}",
    };

    private static Command Format()
    {
        var path = PathArgument();
        var size = new Option<string?>("--size") { Description = "Create a datastore file of this size (e.g. 10G); not for devices" };
        var blockSize = new Option<string>("--block-size") { Description = "Allocation block size", DefaultValueFactory = _ => "1M" };
        var maxHosts = new Option<int>("--max-hosts") { Description = "Hosts that can mount the datastore at once", DefaultValueFactory = _ => 32 };
        var maxFiles = new Option<int>("--max-files") { Description = "Virtual disks the datastore can hold", DefaultValueFactory = _ => 1024 };
        var label = new Option<string>("--label") { Description = "Datastore label", DefaultValueFactory = _ => "datastore1" };
        var overcommit = new Option<bool>("--allow-overcommit") { Description = "Let thin disks promise more space than the datastore has" };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing (unused) datastore" };
        var heartbeat = new Option<double>("--heartbeat-interval") { Description = "Seconds between heartbeat renewals", DefaultValueFactory = _ => 1 };
        var fence = new Option<double>("--fence-after") { Description = "Seconds without renewal after which a host fences itself", DefaultValueFactory = _ => 6 };
        var dead = new Option<double>("--host-dead-after") { Description = "Seconds of stale heartbeat after which others take a host's leases", DefaultValueFactory = _ => 10 };
        var output = OutputOption();
        var command = new Command("format", "Create a VMFS datastore on a device or file") { path, size, blockSize, maxHosts, maxFiles, label, overcommit, force, heartbeat, fence, dead, output };
        command.SetAction(r => Run(() =>
        {
            var options = new FormatOptions
            {
                SizeBytes = r.GetValue(size) is { } s ? ParseSize(s, "--size") : null,
                BlockSize = checked((int)ParseSize(r.GetValue(blockSize)!, "--block-size")),
                MaxHosts = r.GetValue(maxHosts),
                MaxFiles = r.GetValue(maxFiles),
                Label = r.GetValue(label)!,
                AllowThinOvercommit = r.GetValue(overcommit),
                Force = r.GetValue(force),
                Timings = new VmfsTimings
                {
                    HeartbeatInterval = TimeSpan.FromSeconds(r.GetValue(heartbeat)),
                    FenceAfter = TimeSpan.FromSeconds(r.GetValue(fence)),
                    HostDeadAfter = TimeSpan.FromSeconds(r.GetValue(dead)),
                },
            };
            var info = VmfsDatastore.Format(r.GetValue(path)!, options);
            ShowInfo(info, r.GetValue(output)!);
        }));
        return command;
    }

    private static Command Info()
    {
        var path = PathArgument();
        var output = OutputOption();
        var command = new Command("info", "Show capacity, free space, layout, timings and joined hosts") { path, output };
        command.SetAction(r => Run(() => ShowInfo(VmfsInspector.GetInfo(r.GetValue(path)!), r.GetValue(output)!)));
        return command;
    }

    private static Command Ls()
    {
        var path = PathArgument();
        var output = OutputOption();
        var command = new Command("ls", "List virtual disks with provisioned and allocated sizes") { path, output };
        command.SetAction(r => Run(() =>
        {
            var disks = VmfsInspector.List(r.GetValue(path)!);
            if (IsJson(r.GetValue(output)!))
            {
                WriteJson(disks);
                return;
            }

            var table = new Table().AddColumns("NAME", "SIZE", "ALLOCATED", "TYPE", "BASE", "CLONES", "CREATED");
            foreach (var d in disks)
            {
                table.AddRow(Markup.Escape(d.Name), Human(d.SizeBytes), Human(d.AllocatedBytes),
                    d.ReadOnlyBase ? "base (read-only)" : d.Base is not null ? "linked clone" : d.Thin ? "thin" : "thick",
                    Markup.Escape(d.Base ?? "-"), d.Clones.ToString(CultureInfo.InvariantCulture), d.Created.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
        }));
        return command;
    }

    private static Command Locks()
    {
        var path = PathArgument();
        var output = OutputOption();
        var command = new Command("locks", "Show who holds which lease, and every host's heartbeat age") { path, output };
        command.SetAction(r => Run(() =>
        {
            var hosts = VmfsInspector.GetHosts(r.GetValue(path)!);
            var locks = VmfsInspector.GetLocks(r.GetValue(path)!);
            if (IsJson(r.GetValue(output)!))
            {
                WriteJson(new { hosts, locks });
                return;
            }

            var hostTable = new Table().AddColumns("SLOT", "HOST", "STATE", "GENERATION", "HEARTBEAT AGE");
            foreach (var h in hosts)
            {
                hostTable.AddRow(h.Slot.ToString(CultureInfo.InvariantCulture), Markup.Escape(h.HostName),
                    h.Problem is not null ? "[red]corrupt[/]" : !h.Live ? "left" : h.PresumedDead ? "[red]presumed dead[/]" : "[green]live[/]",
                    h.Generation.ToString(CultureInfo.InvariantCulture), h.HeartbeatAge is { } age ? $"{age.TotalSeconds:F1} s" : "-");
            }

            AnsiConsole.Write(hostTable);
            var lockTable = new Table().AddColumns("RESOURCE", "MODE", "OWNER", "LEASE VERSION", "OWNER HEARTBEAT", "NOTE");
            foreach (var l in locks)
            {
                var owner = l.Mode == LeaseMode.SharedRead ? string.Join(", ", l.SharedReaders) : l.OwnerHost is null ? "-" : $"{l.OwnerHost} (slot {l.OwnerSlot})";
                lockTable.AddRow(Markup.Escape(l.Resource), ModeText(l.Mode), Markup.Escape(owner), l.Version.ToString(CultureInfo.InvariantCulture),
                    l.OwnerHeartbeatAge is { } age ? $"{age.TotalSeconds:F1} s ago" : "-", Markup.Escape(l.Problem ?? ""));
            }

            AnsiConsole.Write(lockTable);
        }));
        return command;
    }

    private static Command Fsck()
    {
        var path = PathArgument();
        var repair = new Option<bool>("--repair") { Description = "Replay the journal and fix what can be fixed safely (joins the datastore)" };
        var host = HostOption();
        var output = OutputOption();
        var command = new Command("fsck", "Check every metadata structure; exit code 1 when errors remain") { path, repair, host, output };
        command.SetAction(r => Run(() =>
        {
            var report = r.GetValue(repair) ? VmfsFsck.Repair(r.GetValue(path)!, r.GetValue(host)!) : VmfsFsck.Check(r.GetValue(path)!);
            if (IsJson(r.GetValue(output)!))
            {
                WriteJson(new { report.Path, report.Clean, report.Findings, report.Repairs });
            }
            else
            {
                foreach (var fix in report.Repairs)
                {
                    AnsiConsole.MarkupLine($"[green]repaired:[/] {Markup.Escape(fix)}");
                }

                foreach (var f in report.Findings)
                {
                    var kind = !f.IsError ? "[yellow]notice[/]" : f.Repairable ? "[red]error (repairable)[/]" : "[red]error[/]";
                    AnsiConsole.MarkupLine($"{kind} {Markup.Escape(f.Structure)}{(f.Offset is { } o ? $" @ {o}" : "")}: {Markup.Escape(f.Problem)}");
                }

                AnsiConsole.MarkupLine(report.Clean ? "[green]clean[/]" : "[red]errors found[/]" + (report.Findings.Any(f => f.IsError && f.Repairable) && !r.GetValue(repair) ? " - run with --repair to fix the repairable ones" : ""));
            }

            return report.Clean ? 0 : 1;
        }));
        return command;
    }

    private static Command Disk()
    {
        var command = new Command("disk", "Create, clone, delete and resize virtual disks on a datastore");

        var path = PathArgument();
        var name = new Argument<string>("name") { Description = "Disk name" };
        var size = new Option<string>("--size") { Description = "Size, e.g. 20G", Required = true };
        var thick = new Option<bool>("--thick") { Description = "Allocate (and zero) all blocks now instead of on first write" };
        var host = HostOption();
        var output = OutputOption();
        var create = new Command("create", "Create a virtual disk (thin unless --thick)") { path, name, size, thick, host, output };
        create.SetAction(r => Run(() =>
        {
            var bytes = ParseSize(r.GetValue(size)!, "--size");
            WithDatastore(r.GetValue(path)!, r.GetValue(host)!, ds =>
                ShowDisk(ds.CreateDisk(r.GetValue(name)!, bytes, thin: !r.GetValue(thick)), r.GetValue(output)!));
        }));
        command.Subcommands.Add(create);

        var clonePath = PathArgument();
        var baseName = new Argument<string>("base") { Description = "Disk to clone (becomes a read-only base)" };
        var childName = new Argument<string>("clone") { Description = "Name of the linked clone" };
        var cloneHost = HostOption();
        var cloneOutput = OutputOption();
        var clone = new Command("clone", "Create a linked clone (copy-on-write child) of a disk") { clonePath, baseName, childName, cloneHost, cloneOutput };
        clone.SetAction(r => Run(() => WithDatastore(r.GetValue(clonePath)!, r.GetValue(cloneHost)!, ds =>
            ShowDisk(ds.CloneDisk(r.GetValue(baseName)!, r.GetValue(childName)!), r.GetValue(cloneOutput)!))));
        command.Subcommands.Add(clone);

        var rmPath = PathArgument();
        var rmName = new Argument<string>("name") { Description = "Disk name" };
        var rmHost = HostOption();
        var rm = new Command("rm", "Delete a virtual disk (fails, naming the holder, while any host has it open)") { rmPath, rmName, rmHost };
        rm.SetAction(r => Run(() => WithDatastore(r.GetValue(rmPath)!, r.GetValue(rmHost)!, ds =>
        {
            ds.DeleteDisk(r.GetValue(rmName)!);
            Console.WriteLine($"deleted {r.GetValue(rmName)}");
        })));
        command.Subcommands.Add(rm);

        var resizePath = PathArgument();
        var resizeName = new Argument<string>("name") { Description = "Disk name" };
        var newSize = new Option<string>("--size") { Description = "New size, e.g. 40G", Required = true };
        var resizeHost = HostOption();
        var resizeOutput = OutputOption();
        var resize = new Command("resize", "Grow or shrink a virtual disk that no host has open") { resizePath, resizeName, newSize, resizeHost, resizeOutput };
        resize.SetAction(r => Run(() =>
        {
            var bytes = ParseSize(r.GetValue(newSize)!, "--size");
            WithDatastore(r.GetValue(resizePath)!, r.GetValue(resizeHost)!, ds =>
                ShowDisk(ds.ResizeDisk(r.GetValue(resizeName)!, bytes), r.GetValue(resizeOutput)!));
        }));
        command.Subcommands.Add(resize);
        return command;
    }

    private static void WithDatastore(string path, string host, Action<VmfsDatastore> use)
    {
        using var ds = VmfsDatastore.Open(path, host);
        use(ds);
    }

    private static int Run(Action action) => Run(() =>
    {
        action();
        return 0;
    });

    private static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (VmfsException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    private static void ShowInfo(DatastoreInfo info, string output)
    {
        if (IsJson(output))
        {
            WriteJson(info);
            return;
        }

        var grid = new Grid().AddColumn().AddColumn();
        void Row(string k, string v) => grid.AddRow($"[bold]{k}[/]", Markup.Escape(v));
        Row("path", info.Path);
        Row("label", info.Label);
        Row("uuid", info.Uuid.ToString());
        Row("version", info.Version.ToString(CultureInfo.InvariantCulture));
        Row("capacity", Human(info.CapacityBytes));
        Row("used", Human(info.UsedBytes));
        Row("free", Human(info.FreeBytes));
        Row("provisioned", $"{Human(info.ProvisionedBytes)}{(info.ProvisionedBytes > info.CapacityBytes ? " (over-committed)" : "")}");
        Row("thin over-commit", info.AllowThinOvercommit ? "allowed" : "not allowed");
        Row("block size", Human(info.BlockSize));
        Row("sector size", $"{info.SectorSize} B");
        Row("disks", $"{info.Disks} of {info.MaxFiles}");
        Row("hosts", $"{info.Hosts.Count(h => h.Live && !h.PresumedDead)} live of {info.MaxHosts} slots");
        Row("timings", $"heartbeat {info.Timings.HeartbeatInterval.TotalSeconds} s, fence after {info.Timings.FenceAfter.TotalSeconds} s, host dead after {info.Timings.HostDeadAfter.TotalSeconds} s");
        Row("direct I/O", info.DirectIo ? "yes (O_DIRECT)" : "no (file system refuses O_DIRECT)");
        Row("journal", info.JournalPending ? "a committed transaction awaits replay" : "clean");
        Row("created", info.Created.ToString("u", CultureInfo.InvariantCulture));
        AnsiConsole.Write(grid);
    }

    private static void ShowDisk(VirtualDiskInfo disk, string output)
    {
        if (IsJson(output))
        {
            WriteJson(disk);
            return;
        }

        Console.WriteLine($"{disk.Name}: {Human(disk.SizeBytes)} provisioned, {Human(disk.AllocatedBytes)} allocated{(disk.Base is null ? disk.Thin ? ", thin" : ", thick" : $", linked clone of {disk.Base}")}");
    }

    private static string ModeText(LeaseMode mode) => mode switch
    {
        LeaseMode.Exclusive => "exclusive",
        LeaseMode.SharedRead => "shared-read",
        _ => "free",
    };

    private static bool IsJson(string output) => output switch
    {
        "json" => true,
        "table" => false,
        _ => throw new FormatException($"output format '{output}' is not known; use -o table or -o json."),
    };

    private static void WriteJson<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, Json));

    internal static long ParseSize(string text, string option)
    {
        var t = text.Trim();
        long multiplier = 1;
        var unit = t.Length > 0 ? char.ToUpperInvariant(t[^1]) : ' ';
        if (unit is 'K' or 'M' or 'G' or 'T')
        {
            multiplier = unit switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1L << 40 };
            t = t[..^1];
        }

        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0)
        {
            throw new FormatException($"{option} '{text}' is not a size; use bytes or a number with K, M, G or T (e.g. 20G).");
        }

        return checked(n * multiplier);
    }

    private static string Human(long bytes) => bytes switch
    {
        >= 1L << 40 => $"{bytes / (double)(1L << 40):F1} TiB",
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F1} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
