using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Vm;

/// <summary>
/// A VMkernel on a fresh, short state directory (unix socket paths are limited to 107 bytes). Disposal kills
/// every QEMU that names the directory on its command line, whatever state the test left it in, and removes
/// the directory.
/// </summary>
public sealed class VmHostFixture : IAsyncDisposable
{
    public VmHostFixture()
    {
        StateDirectory = Path.Combine("/tmp", $"vmkt-{Guid.NewGuid().ToString("N")[..8]}");
        System.IO.Directory.CreateDirectory(StateDirectory);
    }

    public string StateDirectory { get; }

    public VmkernelOptions Options(Func<VmkernelOptions, VmkernelOptions>? change = null)
    {
        var options = new VmkernelOptions
        {
            StateDirectory = StateDirectory,
            Accelerator = AcceleratorMode.Tcg,
            ShutdownTimeout = TimeSpan.FromSeconds(20),
        };
        return change is null ? options : change(options);
    }

    public Task<VmkernelHost> OpenAsync(Func<VmkernelOptions, VmkernelOptions>? change = null)
    {
        var options = Options(change);
        _hostNames.Add(options.HostName);
        return VmkernelHost.OpenAsync(options, NullLoggerFactory.Instance);
    }

    private readonly HashSet<string> _hostNames = [];

    /// <summary>Pids of QEMU processes started from this fixture's state directory.</summary>
    public IReadOnlyList<int> QemuPids() =>
        System.IO.Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && ReadCmdline(pid) is var cmd
                && cmd.Contains(StateDirectory, StringComparison.Ordinal) && cmd.Contains("qemu-system", StringComparison.Ordinal))
            .ToList();

    public async ValueTask DisposeAsync()
    {
        foreach (var pid in QemuPids())
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill();
                await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (ArgumentException)
            {
            }
        }
        // A VMkernel that lets go of its VMs leaves their cgroups to the next one; nobody comes next here.
        var vms = Path.Combine(StateDirectory, "vms");
        if (System.IO.Directory.Exists(vms))
        {
            var cgroups = Vmk.Vmkernel.Resources.CgroupManagerFactory.Detect();
            foreach (var vm in System.IO.Directory.EnumerateDirectories(vms))
            {
                foreach (var host in _hostNames)
                {
                    cgroups.Open(Vmk.Vmkernel.Resources.VmCgroupNames.For(Path.GetFileName(vm), host))?.Delete();
                }
            }
        }
        try
        {
            System.IO.Directory.Delete(StateDirectory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private static string ReadCmdline(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return "";
        }
        catch (UnauthorizedAccessException)
        {
            return "";
        }
    }
}
