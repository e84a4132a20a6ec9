using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Vmk.ApiServerBench;

/// <summary>
/// N small VirtualMachine objects created by W concurrent writers while one watcher follows them, then listed
/// whole. Run once with fsync per commit (the default) and once without; no kube-apiserver can run here, so
/// there is no peer to run beside it.
/// </summary>
internal static class BenchDriver
{
    public static async Task<int> RunAsync(int objects, int writers)
    {
        Console.WriteLine($"# apiserver bench: {objects} VirtualMachine objects, {writers} writers, 1 watcher, KubernetesClient over HTTPS");
        Console.WriteLine("# peer: none runnable here (no kube-apiserver/etcd on this machine); two storage modes of ours instead");
        foreach (var mode in new[] { "durable", "fast" })
        {
            await RunOneAsync(mode, objects, writers);
        }
        return 0;
    }

    private static async Task RunOneAsync(string mode, int objects, int writers)
    {
        var dir = Path.Combine(Path.GetTempPath(), "vmk-apiserver-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var psi = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add(dir);
        psi.ArgumentList.Add(mode);
        using var server = Process.Start(psi)!;
        try
        {
            var ready = await server.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("server exited before it was ready");
            var kubeconfig = ready["READY ".Length..];
            using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
            const string ns = "bench";
            await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } });
            var start = JsonSerializer.SerializeToNode(await client.CustomObjects.ListNamespacedCustomObjectAsync("vmkernel.io", "v1alpha1", ns, "virtualmachines"))!;
            var listRv = start["metadata"]!["resourceVersion"]!.GetValue<string>();

            var sent = new ConcurrentDictionary<string, long>();
            var delays = new ConcurrentBag<double>();
            var allSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var seen = 0;
            using var stopWatch = new CancellationTokenSource();
            var watcher = Task.Run(async () =>
            {
                var stream = client.CustomObjects.WatchListNamespacedCustomObjectAsync("vmkernel.io", "v1alpha1", ns, "virtualmachines",
                    resourceVersion: listRv, cancellationToken: stopWatch.Token);
                try
                {
                    await foreach (var (type, obj) in stream)
                    {
                        var now = Stopwatch.GetTimestamp();
                        if (type != WatchEventType.Added)
                        {
                            continue;
                        }
                        var name = ((JsonElement)obj).GetProperty("metadata").GetProperty("name").GetString()!;
                        if (sent.TryGetValue(name, out var t0))
                        {
                            delays.Add(Stopwatch.GetElapsedTime(t0, now).TotalMilliseconds);
                        }
                        if (Interlocked.Increment(ref seen) == objects)
                        {
                            allSeen.TrySetResult();
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });

            var perWriter = objects / writers;
            var total = Stopwatch.StartNew();
            var tasks = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (var i = 0; i < perWriter + (w < objects % writers ? 1 : 0); i++)
                {
                    var name = $"vm-{w}-{i}";
                    var body = new JsonObject
                    {
                        ["apiVersion"] = "vmkernel.io/v1alpha1",
                        ["kind"] = "VirtualMachine",
                        ["metadata"] = new JsonObject { ["name"] = name, ["labels"] = new JsonObject { ["writer"] = w.ToString(CultureInfo.InvariantCulture) } },
                        ["spec"] = new JsonObject { ["memory"] = new JsonObject { ["size"] = "64Mi" } },
                    };
                    sent[name] = Stopwatch.GetTimestamp();
                    await client.CustomObjects.CreateNamespacedCustomObjectAsync(body, "vmkernel.io", "v1alpha1", ns, "virtualmachines");
                }
            })).ToArray();
            await Task.WhenAll(tasks);
            var createSeconds = total.Elapsed.TotalSeconds;
            if (await Task.WhenAny(allSeen.Task, Task.Delay(TimeSpan.FromSeconds(60))) != allSeen.Task)
            {
                throw new InvalidOperationException($"watcher saw only {seen} of {objects} objects");
            }
            await stopWatch.CancelAsync();

            var listTimes = new List<double>();
            for (var i = 0; i < 3; i++)
            {
                var sw = Stopwatch.StartNew();
                var list = await client.CustomObjects.ListNamespacedCustomObjectAsync("vmkernel.io", "v1alpha1", ns, "virtualmachines");
                var count = ((JsonElement)list).GetProperty("items").GetArrayLength();
                listTimes.Add(sw.Elapsed.TotalMilliseconds);
                if (count != objects)
                {
                    throw new InvalidOperationException($"list returned {count} objects, expected {objects}");
                }
            }

            var (rssNow, rssPeak) = Rss(server.Id);
            var sorted = delays.Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"mode={mode} create_per_s={objects / createSeconds:F0} watch_delay_p50_ms={Percentile(sorted, 0.50):F1} watch_delay_p99_ms={Percentile(sorted, 0.99):F1} list_5000_ms={listTimes.Order().ElementAt(1):F0} rss_mib={rssPeak:F0} rss_after_mib={rssNow:F0}"));
        }
        finally
        {
            server.StandardInput.Close();
            var stats = await server.StandardOutput.ReadLineAsync();
            if (stats is not null && stats.StartsWith("STATS ", StringComparison.Ordinal))
            {
                Console.WriteLine($"# mode={mode} group commit: {stats[6..]}");
            }
            if (!server.WaitForExit(15_000))
            {
                server.Kill(entireProcessTree: true);
            }
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static double Percentile(double[] sorted, double p)
        => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    /// <summary>Resident set of the server process now and at its peak (VmRSS, VmHWM), in MiB.</summary>
    private static (double Now, double Peak) Rss(int pid)
    {
        double now = 0;
        double peak = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                now = Kb(line) / 1024.0;
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kb(line) / 1024.0;
            }
        }
        return (now, peak);
    }

    private static long Kb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
}
