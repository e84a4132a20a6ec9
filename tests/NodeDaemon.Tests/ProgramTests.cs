using System.Diagnostics;

namespace Vmk.NodeDaemon.Tests;

/// <summary>The vmkerneld binary explains itself and refuses settings it cannot use with a message, never a crash.</summary>
public sealed class ProgramTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmk-prog-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Help_lists_the_switches_with_their_defaults()
    {
        var (code, output) = await RunAsync("--help");
        Assert.Equal(0, code);
        Assert.Contains("--state-dir", output, StringComparison.Ordinal);
        Assert.Contains("/etc/vmkernel/tls", output, StringComparison.Ordinal);
        Assert.Contains("vmkerneld certificates", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--tls-dir", "missing", "ca.crt' is missing")]
    [InlineData("--grpc-listen", "localhost", "--grpc-listen 'localhost' is not address:port")]
    public async Task A_setting_it_cannot_use_exits_2_with_what_to_do_and_no_stack_trace(string flag, string value, string expected)
    {
        var args = new List<string> { "--state-dir", Path.Combine(_dir, "state") };
        if (flag != "--tls-dir")
        {
            Directory.CreateDirectory(Path.Combine(_dir, "tls"));
            Vmk.NodeDaemon.Client.Security.CertificateAuthority.WriteSet(Path.Combine(_dir, "tls"), ["localhost"], [System.Net.IPAddress.Loopback]);
            args.AddRange(["--tls-dir", Path.Combine(_dir, "tls")]);
        }
        args.AddRange([flag, flag == "--tls-dir" ? Path.Combine(_dir, value) : value]);
        var (code, output) = await RunAsync([.. args]);
        Assert.Equal(2, code);
        Assert.Contains(expected, output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output)> RunAsync(params string[] args)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "vmkerneld.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
