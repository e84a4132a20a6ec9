using System.Diagnostics;

namespace Vmk.Vmkernel.Network;

/// <summary>
/// Runs requests as processes. With a network namespace (a "host" in tests, /run/netns/NAME) every command is
/// started through nsenter into it, so bridges, taps, rules and dnsmasq all live in that host's namespace.
/// </summary>
public sealed class ProcessCommandRunner : ICommandRunner
{
    public ProcessCommandRunner(string? networkNamespace = null)
    {
        NetworkNamespace = networkNamespace;
    }

    public string? NetworkNamespace { get; }

    public async Task<CommandResult> RunAsync(CommandRequest request, CancellationToken ct = default)
    {
        var psi = new ProcessStartInfo
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = request.Stdin is not null,
        };
        if (NetworkNamespace is null)
        {
            psi.FileName = request.Program;
        }
        else
        {
            psi.FileName = "nsenter";
            psi.ArgumentList.Add($"--net=/run/netns/{NetworkNamespace}");
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(request.Program);
        }
        foreach (var a in request.Args)
        {
            psi.ArgumentList.Add(a);
        }
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new VmkernelException($"could not start {request.Program}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new VmkernelException(
                $"'{request.Program}' could not be started ({e.Message}); install it (iproute2, nftables, dnsmasq-base: scripts/setup.sh does it)", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            if (request.Stdin is not null)
            {
                await process.StandardInput.WriteAsync(request.Stdin.AsMemory(), ct);
                process.StandardInput.Close();
            }
            await process.WaitForExitAsync(ct);
            return new CommandResult(process.ExitCode, await stdout, (await stderr).Trim());
        }
    }
}
