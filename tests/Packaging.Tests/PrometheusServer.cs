using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Vmk.Packaging.Tests;

/// <summary>
/// A real Prometheus (Debian's) on a free port over a TSDB backfilled by promtool from
/// <see cref="SyntheticMetrics"/>. Killed and its directory removed on dispose.
/// </summary>
public sealed class PrometheusServer : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "vmk-prometheus-" + Guid.NewGuid().ToString("N")[..12]);
    private Process? _process;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>The time of the newest sample: queries evaluate there.</summary>
    public DateTimeOffset End { get; } = DateTimeOffset.UtcNow.AddMinutes(-1);

    public Uri? Url { get; private set; }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        var om = Path.Combine(_dir, "samples.om");
        File.WriteAllText(om, SyntheticMetrics.OpenMetrics(End, points: 121));
        await Tool.OkAsync("promtool", ["tsdb", "create-blocks-from", "openmetrics", om, Path.Combine(_dir, "data")], timeout: TimeSpan.FromMinutes(3));
        var config = Path.Combine(_dir, "prometheus.yml");
        File.WriteAllText(config, "global:\n  scrape_interval: 15s\nscrape_configs: []\n");

        var port = FreePort();
        var psi = new ProcessStartInfo("prometheus")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            "--config.file=" + config, "--storage.tsdb.path=" + Path.Combine(_dir, "data"),
            $"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
        })
        {
            psi.ArgumentList.Add(a);
        }
        _process = Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _process.ErrorDataReceived += (_, e) =>
        {
            lock (log)
            {
                log.AppendLine(e.Data);
            }
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("Prometheus exited:\n" + log));
            }
            else if (e.Data.Contains("Server is ready to receive web requests", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        Url = new Uri($"http://127.0.0.1:{port}/");
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            lock (log)
            {
                throw new InvalidOperationException("Prometheus did not become ready within 60 s:\n" + log);
            }
        }
    }

    /// <summary>An instant query at <see cref="End"/>: Prometheus's JSON answer (status, data or error).</summary>
    public async Task<JsonNode> QueryAsync(string promql)
    {
        var uri = new Uri(Url!, "api/v1/query?query=" + Uri.EscapeDataString(promql) + "&time=" + End.ToUnixTimeSeconds());
        using var r = await _http.GetAsync(uri);
        return JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
        }
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
