using System.Diagnostics;

namespace Vmk.Packaging.Tests;

/// <summary>Runs a real tool as a child process; kills it (and its children) if it outlives the deadline.</summary>
public static class Tool
{
    public static async Task<ToolResult> RunAsync(
        string file,
        IEnumerable<string> args,
        string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null,
        TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Repo.Root,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment.Remove("KUBECONFIG");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        var command = file + " " + string.Join(' ', psi.ArgumentList);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + file);
        var limit = timeout ?? TimeSpan.FromMinutes(2);
        using var cts = new CancellationTokenSource(limit);
        var stdout = p.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = p.StandardError.ReadToEndAsync(CancellationToken.None);
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
        }
        p.StandardInput.Close();
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync(CancellationToken.None);
            throw new TimeoutException($"{command} did not finish within {limit.TotalSeconds} s");
        }
        return new ToolResult(command, p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs the tool and fails the test, with everything it printed, unless it exits 0.</summary>
    public static async Task<string> OkAsync(string file, IEnumerable<string> args, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var r = await RunAsync(file, args, stdin, environment, timeout);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }
}
