using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Vmk.E2E.Tests;

/// <summary>The real kubectl, pointed at a standalone run's kubeconfig.</summary>
public sealed class Kubectl(string kubeconfig)
{
    public async Task<CommandResult> RunAsync(params string[] args) => await RunWithInputAsync(null, args);

    public async Task<CommandResult> RunWithInputAsync(string? stdin, params string[] args)
    {
        var info = new ProcessStartInfo("kubectl")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        info.Environment["KUBECONFIG"] = kubeconfig;
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var p = Process.Start(info) ?? throw new InvalidOperationException("kubectl did not start");
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        return new CommandResult(p.ExitCode, await stdout, await stderr);
    }

    public async Task<CommandResult> ApplyAsync(string yaml)
    {
        var r = await RunWithInputAsync(yaml, "apply", "-f", "-");
        Assert.True(r.ExitCode == 0, $"kubectl apply failed: {r}\nmanifest:\n{yaml}");
        return r;
    }

    /// <summary><c>kubectl get KIND NAME -o json</c>, or null when it does not exist.</summary>
    public async Task<JsonNode?> GetAsync(string kind, string name)
    {
        var r = await RunAsync("get", kind, name, "-o", "json");
        if (r.ExitCode != 0)
        {
            Assert.Contains("NotFound", r.Stderr);
            return null;
        }
        return JsonNode.Parse(r.Stdout);
    }

    public async Task<JsonArray> ListAsync(string kind)
    {
        var r = await RunAsync("get", kind, "-o", "json");
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonNode.Parse(r.Stdout)!["items"]!.AsArray();
    }
}
