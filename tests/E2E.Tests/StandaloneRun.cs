using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Vmk.E2E.Tests;

/// <summary>
/// <c>vmctl standalone</c> as a user runs it: its own process, a temporary data directory, a free port, the
/// machine's real guest image directory. Disposing stops it with SIGTERM (which powers off its VMs and removes its
/// namespaces) and then makes sure, whatever happened, that nothing of it is left: processes whose command line
/// names the data directory (daemons, QEMUs), the network namespaces and bridge named after the run, the VMs'
/// cgroups, the directory itself.
/// </summary>
public sealed partial class StandaloneRun : IAsyncDisposable
{
    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(240);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<string> _vmNames = [];

    private StandaloneRun(Process process, string dataDirectory, int hosts)
    {
        _process = process;
        DataDirectory = dataDirectory;
        Hosts = hosts;
        Kubectl = new Kubectl(Path.Combine(dataDirectory, "kubeconfig"));
    }

    public string DataDirectory { get; }

    public string DatastoreDirectory => Path.Combine(DataDirectory, "datastores");

    public int Hosts { get; }

    public Kubectl Kubectl { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>The run's short id, as vmctl derives it: names of its namespaces and bridge.</summary>
    public string ShortId => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(DataDirectory)))[..6];

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts a run on a new temporary directory, or on <paramref name="dataDirectory"/> to restart a stopped run.</summary>
    public static async Task<StandaloneRun> StartAsync(int hosts, string? dataDirectory = null)
    {
        var dir = dataDirectory ?? Directory.CreateTempSubdirectory("vmk-e2e-").FullName;
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (string[])[
            Path.Combine(AppContext.BaseDirectory, "vmctl.dll"), "standalone", "--data-dir", dir, "--port", "0",
            "--hosts", hosts.ToString(System.Globalization.CultureInfo.InvariantCulture), "--crds", Repo.PathOf("crds"),
            "--datastore-dir", Path.Combine(dir, "datastores"), "--accelerator", "tcg"])
        {
            info.ArgumentList.Add(a);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("vmctl did not start");
        var run = new StandaloneRun(process, dir, hosts);
        process.OutputDataReceived += (_, e) => run.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => run.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var first = await Task.WhenAny(run._ready.Task, process.WaitForExitAsync(), Task.Delay(StartDeadline));
        if (first != run._ready.Task)
        {
            var output = run.Output;
            await run.DisposeAsync();
            throw new InvalidOperationException($"vmctl standalone did not come up within {StartDeadline.TotalSeconds} s; its output:\n{output}");
        }
        return run;
    }

    /// <summary>DATA/standalone.json: what runs where (pids, addresses, metrics).</summary>
    public JsonNode Status() => JsonNode.Parse(File.ReadAllText(Path.Combine(DataDirectory, "standalone.json")))!;

    /// <summary>Remembers a VM name the test creates, so its cgroups can be removed even when the test fails.</summary>
    public string Track(string vmName)
    {
        lock (_vmNames)
        {
            _vmNames.Add(vmName);
        }
        return vmName;
    }

    /// <summary>The example Datastore with its file moved into this run's datastore directory.</summary>
    public string ExampleDatastore() =>
        File.ReadAllText(Repo.PathOf("examples", "datastore.yaml"))
            .Replace("/var/lib/vmk/datastores/", DatastoreDirectory + "/", StringComparison.Ordinal);

    /// <summary>Every example, with the datastore file in this run's directory.</summary>
    public string Examples() => string.Join("\n---\n",
        ExampleDatastore(), File.ReadAllText(Repo.PathOf("examples", "portgroup.yaml")), File.ReadAllText(Repo.PathOf("examples", "virtualmachine.yaml")));

    /// <summary>QEMU processes of this run whose command line mentions <paramref name="vmName"/>.</summary>
    public IReadOnlyList<int> QemuProcesses(string vmName) =>
        ProcessesMentioning(DataDirectory).Where(p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal) && p.CommandLine.Contains(vmName, StringComparison.Ordinal))
            .Select(p => p.Pid).ToList();

    /// <summary>The guest's serial console as the daemon keeps it (console.log in the VM's state directory on its host).</summary>
    public string Console(string vmName)
    {
        var text = new StringBuilder();
        var hosts = Path.Combine(DataDirectory, "hosts");
        if (!Directory.Exists(hosts))
        {
            return "";
        }
        foreach (var vmDir in Directory.EnumerateDirectories(hosts, "*", SearchOption.AllDirectories).Where(d => Path.GetFileName(d).Contains(vmName, StringComparison.Ordinal)))
        {
            foreach (var name in (string[])["console.log.previous", "console.log"])
            {
                var file = Path.Combine(vmDir, name);
                if (File.Exists(file))
                {
                    using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    text.Append(new StreamReader(stream).ReadToEnd());
                }
            }
        }
        return text.ToString();
    }

    /// <summary>What Ctrl-C does: SIGTERM, then wait for vmctl to finish its orderly stop. Returns its exit code.</summary>
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(_process.Id, 15);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(180));
        }
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(_process.Id, 15);
            try
            {
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(180));
            }
            catch (TimeoutException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        _process.Dispose();
        // Whatever the stop left (it should leave nothing): processes, namespaces, bridge, cgroups, files.
        foreach (var (pid, _) in ProcessesMentioning(DataDirectory))
        {
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (ArgumentException)
            {
            }
        }
        for (var i = 1; i <= Hosts; i++)
        {
            await RunQuietAsync("ip", "netns", "del", $"vmk-{ShortId}-h{i}");
        }
        await RunQuietAsync("ip", "link", "del", $"vmk-{ShortId}-br");
        RemoveCgroups();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>What a stop left behind, for the test that asserts a stop is clean.</summary>
    public async Task<IReadOnlyList<string>> LeftoversAsync()
    {
        var left = ProcessesMentioning(DataDirectory).Select(p => $"process {p.Pid}: {p.CommandLine}").ToList();
        var netns = await RunQuietAsync("ip", "netns", "list");
        left.AddRange(netns.Split('\n').Where(l => l.StartsWith($"vmk-{ShortId}-", StringComparison.Ordinal)).Select(l => "netns " + l));
        if ((await RunQuietAsync("ip", "-o", "link", "show")).Contains($"vmk-{ShortId}-", StringComparison.Ordinal))
        {
            left.Add($"links named vmk-{ShortId}-*");
        }
        return left;
    }

    public static async Task<HashSet<string>> LinkNamesAsync() =>
        (await RunQuietAsync("ip", "-o", "link", "show")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':')[1].Trim().Split('@')[0]).ToHashSet();

    private void RemoveCgroups()
    {
        List<string> names;
        lock (_vmNames)
        {
            names = [.. _vmNames];
        }
        if (names.Count == 0 || !Directory.Exists("/sys/fs/cgroup"))
        {
            return;
        }
        foreach (var parent in Directory.EnumerateDirectories("/sys/fs/cgroup").Select(c => Path.Combine(c, "vmkernel")).Where(Directory.Exists))
        {
            foreach (var dir in Directory.EnumerateDirectories(parent).Where(d => names.Any(n => Path.GetFileName(d).Contains(n, StringComparison.Ordinal))))
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static List<(int Pid, string CommandLine)> ProcessesMentioning(string text)
    {
        var list = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                var cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmd.Contains(text, StringComparison.Ordinal))
                {
                    list.Add((pid, cmd));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return list;
    }

    private static async Task<string> RunQuietAsync(params string[] argv)
    {
        var info = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in argv[1..])
        {
            info.ArgumentList.Add(a);
        }
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        _ = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return await stdout;
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.AppendLine(line);
        }
        if (line.StartsWith("Press Ctrl-C", StringComparison.Ordinal))
        {
            _ready.TrySetResult();
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);
}
