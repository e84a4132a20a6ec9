using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Vmk.E2E.Tests;

/// <summary>
/// A real Prometheus (Debian's package) scraping the given targets every second, with a generated config, a
/// temporary storage directory and a free port; killed and its directory removed on dispose.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly HttpClient _http;

    private PrometheusServer(Process process, string directory, Uri address)
    {
        _process = process;
        _directory = directory;
        _http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Targets by job name: host:port (and /metrics as the path).</summary>
    public static PrometheusServer Start(IReadOnlyDictionary<string, IReadOnlyList<string>> jobs)
    {
        var directory = Directory.CreateTempSubdirectory("vmk-e2e-prom-").FullName;
        var config = Path.Combine(directory, "prometheus.yml");
        var scrape = string.Join("\n", jobs.Select(j => $"""
              - job_name: {j.Key}
                static_configs:
                  - targets: [{string.Join(", ", j.Value.Select(t => $"\"{t}\""))}]
            """));
        File.WriteAllText(config, "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n" + scrape + "\n");
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        var info = new ProcessStartInfo("prometheus") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "data")}", $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
        {
            info.ArgumentList.Add(a);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("prometheus did not start: install the Debian package prometheus");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new PrometheusServer(process, directory, new Uri($"http://127.0.0.1:{port}"));
    }

    /// <summary>Every target's job and health ("up", "down", "unknown"); empty before Prometheus answers.</summary>
    public async Task<IReadOnlyList<(string Job, string Instance, string Health, string Error)>> TargetsAsync()
    {
        try
        {
            var doc = JsonNode.Parse(await _http.GetStringAsync(new Uri("/api/v1/targets", UriKind.Relative)))!;
            return doc["data"]!["activeTargets"]!.AsArray()
                .Select(t => ((string)t!["labels"]!["job"]!, (string)t["labels"]!["instance"]!, (string)t["health"]!, (string?)t["lastError"] ?? ""))
                .ToList();
        }
        catch (HttpRequestException)
        {
            return [];
        }
    }

    /// <summary>The raw answer of an instant query (status, data.result or error).</summary>
    public async Task<JsonNode> QueryAsync(string promql)
    {
        using var response = await _http.GetAsync(new Uri($"/api/v1/query?query={Uri.EscapeDataString(promql)}", UriKind.Relative));
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
