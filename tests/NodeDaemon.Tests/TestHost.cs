using System.Net;
using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Client.Security;

namespace Vmk.NodeDaemon.Tests;

/// <summary>
/// One simulated host: a short state directory (unix socket paths are limited to 107 bytes), its own CA and
/// certificate set, and the vmkerneld processes a test starts on it. Disposal kills every daemon it started and
/// every QEMU whose command line names its state directory, whatever the test left behind, then removes the
/// directory.
/// </summary>
public sealed class TestHost : IAsyncDisposable
{
    private readonly List<DaemonProcess> _daemons = [];

    public TestHost()
    {
        Root = Path.Combine("/tmp", $"vmkd-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(Root);
        CertificateAuthority.WriteSet(TlsDirectory, ["localhost"], [IPAddress.Loopback]);
        Directory.CreateDirectory(DatastoreDirectory);
    }

    public string Root { get; }

    public string StateDirectory => Path.Combine(Root, "s");

    public string TlsDirectory => Path.Combine(Root, "tls");

    public string DatastoreDirectory => Path.Combine(Root, "ds");

    public string HostName { get; } = $"host-{Guid.NewGuid().ToString("N")[..6]}";

    public DaemonProcess? Current => _daemons.LastOrDefault();

    public async Task<DaemonProcess> StartDaemonAsync(params string[] extra)
    {
        string[] args =
        [
            "--state-dir", StateDirectory,
            "--tls-dir", TlsDirectory,
            "--grpc-listen", "127.0.0.1:0",
            "--metrics-listen", "127.0.0.1:0",
            "--image-dirs", TestGuest.Directory,
            "--datastore-dirs", DatastoreDirectory,
            "--host-name", HostName,
            "--accelerator", "tcg",
            .. extra,
        ];
        var daemon = await DaemonProcess.StartAsync(args);
        _daemons.Add(daemon);
        return daemon;
    }

    /// <summary>A client with this host's client certificate.</summary>
    public DaemonClient Connect(DaemonProcess daemon) =>
        new(NodeDaemonChannel.Create(daemon.GrpcAddress, TlsDirectory));

    /// <summary>Pids of QEMU processes started from this host's state directory.</summary>
    public IReadOnlyList<int> QemuPids() =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && ReadCmdline(pid) is var cmd
                && cmd.Contains(StateDirectory + "/", StringComparison.Ordinal) && cmd.Contains("qemu-system", StringComparison.Ordinal))
            .ToList();

    public static bool IsAlive(int pid) => Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in _daemons)
        {
            await daemon.DisposeAsync();
        }
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
        // Port groups live in the machine's network namespace: remove every bridge, tap, rule and dnsmasq left.
        if (Directory.Exists(StateDirectory))
        {
            var sw = Vmk.Vmkernel.Network.VSwitch.Open(StateDirectory, new Vmk.Vmkernel.Network.ProcessCommandRunner(),
                Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            foreach (var record in sw.PortGroups)
            {
                foreach (var vm in record.Ports.Select(p => p.Vm).Distinct())
                {
                    await sw.RemoveTapsAsync(vm);
                }
                await sw.RemoveAsync(record.Spec.Name);
            }
        }
        // A daemon that lets go of its VMs leaves their cgroups to the next one; nobody comes next here.
        var vms = Path.Combine(StateDirectory, "vms");
        if (Directory.Exists(vms))
        {
            var cgroups = Vmk.Vmkernel.Resources.CgroupManagerFactory.Detect();
            foreach (var vm in Directory.EnumerateDirectories(vms))
            {
                cgroups.Open(Vmk.Vmkernel.Resources.VmCgroupNames.For(Path.GetFileName(vm), HostName))?.Delete();
            }
        }
        try
        {
            Directory.Delete(Root, recursive: true);
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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
