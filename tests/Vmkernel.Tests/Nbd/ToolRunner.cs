using System.Diagnostics;
using System.Text;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>Runs a real command-line client (qemu-img, qemu-io, nbdinfo, nbdcopy) and kills it if it overruns.</summary>
internal static class ToolRunner
{
    public static async Task<ToolResult> RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish within 2 minutes; stderr: {await stderr}");
        }

        return new ToolResult(process.ExitCode, await stdout, await stderr, $"{file} {string.Join(' ', arguments)}");
    }

    public static async Task<string> RunCheckedAsync(string file, params string[] arguments)
    {
        var result = await RunAsync(file, arguments);
        Assert.True(result.ExitCode == 0, $"{result.CommandLine} exited with {result.ExitCode}\nstdout: {result.Stdout}\nstderr: {result.Stderr}");
        return result.Stdout;
    }
}

internal sealed record ToolResult(int ExitCode, string Stdout, string Stderr, string CommandLine)
{
    public string Output => new StringBuilder(Stdout).Append(Stderr).ToString();
}
