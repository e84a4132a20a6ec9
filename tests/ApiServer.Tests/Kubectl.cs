using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Vmk.ApiServer.Tests;

/// <summary>The real kubectl binary, run against a test server with a private discovery cache.</summary>
public sealed class Kubectl : IDisposable
{
    private readonly string _kubeconfig;
    private readonly string _cacheDir = Path.Combine(Path.GetTempPath(), "vmk-kubectl-cache-" + Guid.NewGuid().ToString("N")[..12]);

    public Kubectl(string kubeconfig)
    {
        _kubeconfig = kubeconfig;
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
    }

    private ProcessStartInfo Start(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("kubectl")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--kubeconfig");
        psi.ArgumentList.Add(_kubeconfig);
        psi.ArgumentList.Add("--cache-dir");
        psi.ArgumentList.Add(_cacheDir);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("KUBECONFIG");
        return psi;
    }

    public async Task<Result> RunWithInputAsync(string stdin, params string[] args)
    {
        using var p = Process.Start(Start(args))!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var stdout = p.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = p.StandardError.ReadToEndAsync(timeout.Token);
        await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("kubectl " + string.Join(' ', args) + " did not finish within 60 s");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    public Task<Result> RunAsync(params string[] args) => RunWithInputAsync("", args);

    /// <summary>Runs kubectl and asserts it succeeded; returns stdout.</summary>
    public async Task<string> OkAsync(params string[] args)
    {
        var r = await RunAsync(args);
        Assert.True(r.ExitCode == 0, "kubectl " + string.Join(' ', args) + " failed: " + r);
        return r.Stdout;
    }

    public async Task<string> ApplyAsync(string yaml, params string[] extra)
    {
        var r = await RunWithInputAsync(yaml, ["apply", "-f", "-", .. extra]);
        Assert.True(r.ExitCode == 0, "kubectl apply failed: " + r);
        return r.Stdout;
    }

    /// <summary>A long-running kubectl (get -w) whose output lines arrive on a channel; killed on dispose.</summary>
    public Streaming Stream(params string[] args) => new(Process.Start(Start(args))!);

    public sealed class Streaming : IDisposable
    {
        private readonly Process _process;
        private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
        private readonly StringBuilder _stderr = new();

        internal Streaming(Process process)
        {
            _process = process;
            _process.StandardInput.Close();
            _ = Task.Run(async () =>
            {
                while (await _process.StandardOutput.ReadLineAsync() is { } line)
                {
                    _lines.Writer.TryWrite(line);
                }
                _lines.Writer.TryComplete();
            });
            _ = Task.Run(async () =>
            {
                var err = await _process.StandardError.ReadToEndAsync();
                lock (_stderr)
                {
                    _stderr.Append(err);
                }
            });
        }

        /// <summary>Reads lines until one satisfies <paramref name="match"/>; fails after the deadline.</summary>
        public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan deadline)
        {
            using var cts = new CancellationTokenSource(deadline);
            var seen = new List<string>();
            try
            {
                while (true)
                {
                    var line = await _lines.Reader.ReadAsync(cts.Token);
                    seen.Add(line);
                    if (match(line))
                    {
                        return line;
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                string err;
                lock (_stderr)
                {
                    err = _stderr.ToString();
                }
                throw new Xunit.Sdk.XunitException($"no matching line from kubectl; saw:\n{string.Join('\n', seen)}\nstderr:\n{err}");
            }
        }

        public void Dispose()
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(10_000);
                }
            }
            catch (InvalidOperationException)
            {
            }
            _process.Dispose();
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_cacheDir))
        {
            Directory.Delete(_cacheDir, recursive: true);
        }
    }
}
