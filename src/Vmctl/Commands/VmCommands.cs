using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Vmk.Vmkernel;
using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmctl.Commands;

/// <summary>`vmctl vm`: run and control virtual machines on this host, with no daemon.</summary>
internal static class VmCommands
{
    public static Command Create()
    {
        var command = new Command("vm", "Run and control virtual machines on this host");
        command.Subcommands.Add(CreateRun());
        command.Subcommands.Add(CreateList());
        command.Subcommands.Add(CreateKill());
        return command;
    }

    private static Option<string> StateDirOption() => new("--state-dir")
    {
        Description = "VMkernel state directory (one folder per VM)",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("VMK_STATE_DIR") ?? "/run/vmkernel/vmctl",
    };

    private static Command CreateRun()
    {
        var guest = GuestImage.DefaultDirectory();
        var name = new Option<string?>("--name") { Description = "VM name (default: guest-<random>)" };
        var kernel = new Option<string>("--kernel")
        {
            Description = "Kernel to boot directly (default: the test guest's vmlinux)",
            DefaultValueFactory = _ => Path.Combine(guest, "vmlinux"),
        };
        var initrd = new Option<string?>("--initrd")
        {
            Description = "Initial ramdisk (default: the test guest's initrd.gz when --kernel is not given)",
        };
        var cmdline = new Option<string>("--cmdline")
        {
            Description = "Kernel command line",
            DefaultValueFactory = _ => GuestImage.DefaultCmdline,
        };
        var cpus = new Option<int>("--cpus") { Description = "vCPUs", DefaultValueFactory = _ => 1 };
        var memory = new Option<string>("--memory") { Description = "Memory, e.g. 256M or 1G", DefaultValueFactory = _ => "256M" };
        var disks = new Option<string[]>("--disk") { Description = "Raw disk image file (repeatable)", AllowMultipleArgumentsPerToken = false };
        var machine = new Option<string>("--machine") { Description = "microvm or q35", DefaultValueFactory = _ => "microvm" };
        var accel = new Option<string>("--accel") { Description = "auto, kvm or tcg", DefaultValueFactory = _ => "auto" };
        var printArgv = new Option<bool>("--print-argv") { Description = "Print the QEMU command line on stderr before starting" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Check the VM, print its QEMU command line on stdout, and exit without starting it" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log what the VMkernel does on stderr" };
        var stateDir = StateDirOption();
        var run = new Command("run", "Boot a VM in the foreground and attach its serial console; Ctrl-C stops it")
        {
            name, kernel, initrd, cmdline, cpus, memory, disks, machine, accel, printArgv, dryRun, verbose, stateDir,
        };
        run.SetAction(async (r, ct) =>
        {
            try
            {
                var spec = new VmSpec
                {
                    Name = r.GetValue(name) ?? $"guest-{Guid.NewGuid().ToString("N")[..6]}",
                    Machine = ParseMachine(r.GetValue(machine)!),
                    Cpu = new CpuTopology(Sockets: 1, Cores: r.GetValue(cpus), Threads: 1),
                    MemoryBytes = ParseSize(r.GetValue(memory)!, "--memory"),
                    Boot = new BootSpec
                    {
                        Kernel = r.GetValue(kernel),
                        Initrd = r.GetValue(initrd) ?? (r.GetResult(kernel) is null or { Implicit: true } ? Path.Combine(guest, "initrd.gz") : null),
                        Cmdline = r.GetValue(cmdline),
                    },
                    Disks = (r.GetValue(disks) ?? []).Select((f, i) => new DiskSpec { Name = $"d{i}", File = Path.GetFullPath(f) }).ToList(),
                };
                var options = new VmkernelOptions
                {
                    StateDirectory = r.GetValue(stateDir)!,
                    Accelerator = ParseAccel(r.GetValue(accel)!),
                };
                return await RunForegroundAsync(spec, options, r.GetValue(printArgv), r.GetValue(dryRun), r.GetValue(verbose), ct);
            }
            catch (VmkernelException e)
            {
                await Console.Error.WriteLineAsync($"vmctl: {e.Message}");
                return 1;
            }
        });
        return run;
    }

    private static async Task<int> RunForegroundAsync(VmSpec spec, VmkernelOptions options, bool printArgv, bool dryRun, bool verbose, CancellationToken ct)
    {
        using var loggerFactory = Logging.Create(verbose ? LogLevel.Information : LogLevel.Warning);
        await using var host = await VmkernelHost.OpenAsync(options, loggerFactory, ct);
        if (host.Find(spec.Name) is not null)
        {
            throw new VmkernelException($"a VM named '{spec.Name}' already exists in {options.StateDirectory}; pick another --name");
        }
        var vm = await host.DefineAsync(spec, ct);
        if (dryRun)
        {
            Console.WriteLine(QemuCommandLine.ToShellLine(host.QemuBinary, vm.BuildArgv()));
            await host.DeleteAsync(spec.Name, ct);
            return 0;
        }
        if (printArgv)
        {
            await Console.Error.WriteLineAsync(QemuCommandLine.ToShellLine(host.QemuBinary, vm.BuildArgv()));
        }
        using var stop = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        try
        {
            await Console.Error.WriteLineAsync($"vmctl: booting {spec.Name} ({host.Accelerator.Accelerator}: {host.Accelerator.Reason}); Ctrl-C stops it");
            await vm.StartAsync(ct);
            using var output = vm.Console!.Subscribe(replayHistory: true);
            var stdout = Console.OpenStandardOutput();
            var forwardInput = Console.IsInputRedirected ? Task.CompletedTask : ForwardInputAsync(vm.Console, stop.Token);
            var ended = vm.WaitForAsync(s => s.State is VmState.Stopped or VmState.Failed, CancellationToken.None);
            try
            {
                await foreach (var chunk in output.Output.ReadAllAsync(stop.Token))
                {
                    await stdout.WriteAsync(chunk, stop.Token);
                    await stdout.FlushAsync(stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
            await stop.CancelAsync();
            await forwardInput.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!ended.IsCompleted)
            {
                await vm.StopAsync(CancellationToken.None);
            }
            var final = await ended;
            await Console.Error.WriteLineAsync($"vmctl: {spec.Name} is {final.State}: {final.Reason}");
            return final.State == VmState.Failed ? 1 : 0;
        }
        finally
        {
            if (vm.State is not (VmState.Stopped or VmState.Failed))
            {
                await vm.StopAsync(CancellationToken.None);
            }
            await host.DeleteAsync(spec.Name, CancellationToken.None);
        }
    }

    private static async Task ForwardInputAsync(SerialConsole console, CancellationToken ct)
    {
        var stdin = Console.OpenStandardInput();
        var buffer = new byte[1024];
        while (!ct.IsCancellationRequested)
        {
            var n = await stdin.ReadAsync(buffer, ct);
            if (n == 0)
            {
                return;
            }
            await console.WriteAsync(buffer.AsMemory(0, n), ct);
        }
    }

    private static Command CreateList()
    {
        var stateDir = StateDirOption();
        var list = new Command("list", "List the VMs in a state directory with their state") { stateDir };
        list.SetAction(async (r, ct) =>
        {
            using var loggerFactory = Logging.Create(LogLevel.Warning);
            try
            {
                await using var host = await VmkernelHost.OpenAsync(new VmkernelOptions { StateDirectory = r.GetValue(stateDir)!, UseCgroups = false }, loggerFactory, ct);
                Console.WriteLine($"{"NAME",-24} {"STATE",-9} {"PID",-8} REASON");
                foreach (var vm in host.VirtualMachines.OrderBy(v => v.Name, StringComparer.Ordinal))
                {
                    Console.WriteLine($"{vm.Name,-24} {vm.State,-9} {vm.Pid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-",-8} {vm.Status.Reason}");
                }
                return 0;
            }
            catch (VmkernelException e)
            {
                await Console.Error.WriteLineAsync($"vmctl: {e.Message}");
                return 1;
            }
        });
        return list;
    }

    private static Command CreateKill()
    {
        var stateDir = StateDirOption();
        var vmName = new Argument<string>("name") { Description = "VM name" };
        var kill = new Command("kill", "Kill a VM's QEMU (SIGKILL) and remove the VM") { vmName, stateDir };
        kill.SetAction(async (r, ct) =>
        {
            using var loggerFactory = Logging.Create(LogLevel.Warning);
            try
            {
                // With cgroups (unlike list): removing the VM removes its cgroup too, which its QEMU no longer holds.
                await using var host = await VmkernelHost.OpenAsync(new VmkernelOptions { StateDirectory = r.GetValue(stateDir)! }, loggerFactory, ct);
                var vm = host.Get(r.GetValue(vmName)!);
                await vm.KillAsync(ct);
                await host.DeleteAsync(vm.Name, ct);
                return 0;
            }
            catch (VmkernelException e)
            {
                await Console.Error.WriteLineAsync($"vmctl: {e.Message}");
                return 1;
            }
        });
        return kill;
    }

    internal static MachineType ParseMachine(string value) => value.ToLowerInvariant() switch
    {
        "microvm" => MachineType.Microvm,
        "q35" => MachineType.Q35,
        _ => throw new VmkernelException($"--machine '{value}': unknown machine type; use microvm or q35"),
    };

    internal static AcceleratorMode ParseAccel(string value) => value.ToLowerInvariant() switch
    {
        "auto" => AcceleratorMode.Auto,
        "kvm" => AcceleratorMode.Kvm,
        "tcg" => AcceleratorMode.Tcg,
        _ => throw new VmkernelException($"--accel '{value}': use auto, kvm or tcg"),
    };

    /// <summary>"256M", "1G", "1048576K", or a bare number of MiB.</summary>
    internal static long ParseSize(string value, string option)
    {
        var v = value.Trim();
        long multiplier = 1 << 20;
        if (v.Length > 0 && char.IsAsciiLetter(v[^1]))
        {
            multiplier = char.ToUpperInvariant(v[^1]) switch
            {
                'K' => 1L << 10,
                'M' => 1L << 20,
                'G' => 1L << 30,
                'T' => 1L << 40,
                _ => 0,
            };
            v = v[..^1];
        }
        if (multiplier == 0 || !long.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
        {
            throw new VmkernelException($"{option} '{value}': give a size such as 256M or 1G");
        }
        return n * multiplier;
    }
}
