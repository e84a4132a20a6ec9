using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using Spectre.Console;

namespace Vmk.Vmctl.Commands;

/// <summary>
/// <c>vmctl migrate VM [--to HOST]</c>: creates a VirtualMachineMigration through the Kubernetes API and follows
/// its status with a progress bar until it ends. Exit 0 when it Succeeded; 1 with its message otherwise.
/// </summary>
internal static class MigrateCommands
{
    private const string Group = "vmkernel.io";
    private const string Version = "v1alpha1";
    private const string Plural = "virtualmachinemigrations";

    public static Command Create()
    {
        var command = new Command("migrate", "Live-migrate a running VirtualMachine to another host (creates a VirtualMachineMigration and follows it)");
        var vm = new Argument<string>("vm") { Description = "Name of the VirtualMachine" };
        var to = new Option<string?>("--to") { Description = "Target host (default: the operator picks the best host, as placement does)" };
        var ns = new Option<string?>("--namespace", "-n") { Description = "Namespace of the VM (default: the kubeconfig context's, else default)" };
        var kubeconfig = new Option<string?>("--kubeconfig") { Description = "Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)" };
        var bandwidth = new Option<string?>("--bandwidth") { Description = "Bandwidth limit, a quantity in bytes per second (e.g. 100Mi)" };
        var noTls = new Option<bool>("--no-tls") { Description = "Send the migration stream unencrypted (policy.encrypted: false)" };
        var noWait = new Option<bool>("--no-wait") { Description = "Create the migration and return without following it" };
        command.Arguments.Add(vm);
        command.Options.Add(to);
        command.Options.Add(ns);
        command.Options.Add(kubeconfig);
        command.Options.Add(bandwidth);
        command.Options.Add(noTls);
        command.Options.Add(noWait);
        command.SetAction(async (ParseResult r, CancellationToken ct) =>
        {
            KubernetesClientConfiguration config;
            try
            {
                var path = r.GetValue(kubeconfig) ?? Environment.GetEnvironmentVariable("KUBECONFIG");
                config = KubernetesClientConfiguration.BuildConfigFromConfigFile(string.IsNullOrEmpty(path) ? null : path);
            }
            catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or FileNotFoundException or IOException)
            {
                await Console.Error.WriteLineAsync($"vmctl migrate: cannot load the kubeconfig: {e.Message}. Give --kubeconfig or set KUBECONFIG (vmctl standalone prints it).");
                return 1;
            }
            var namespaceName = r.GetValue(ns) ?? config.Namespace ?? "default";
            using var client = new Kubernetes(config);
            var name = await CreateAsync(client, namespaceName, r.GetValue(vm)!, r.GetValue(to), r.GetValue(bandwidth), r.GetValue(noTls), ct);
            if (name is null)
            {
                return 1;
            }
            Console.WriteLine($"virtualmachinemigration.vmkernel.io/{name} created");
            return r.GetValue(noWait) ? 0 : await FollowAsync(client, namespaceName, name, ct);
        });
        return command;
    }

    private static async Task<string?> CreateAsync(Kubernetes client, string ns, string vm, string? to, string? bandwidth, bool noTls, CancellationToken ct)
    {
        var policy = new JsonObject();
        if (!string.IsNullOrEmpty(bandwidth))
        {
            policy["bandwidth"] = bandwidth;
        }
        if (noTls)
        {
            policy["encrypted"] = false;
        }
        var spec = new JsonObject { ["vmName"] = vm, ["policy"] = policy };
        if (!string.IsNullOrEmpty(to))
        {
            spec["targetHost"] = to;
        }
        var body = new JsonObject
        {
            ["apiVersion"] = Group + "/" + Version,
            ["kind"] = "VirtualMachineMigration",
            ["metadata"] = new JsonObject { ["generateName"] = vm + "-migration-" },
            ["spec"] = spec,
        };
        try
        {
            var created = (JsonElement)await client.CustomObjects.CreateNamespacedCustomObjectAsync(body, Group, Version, ns, Plural, cancellationToken: ct);
            return created.GetProperty("metadata").GetProperty("name").GetString();
        }
        catch (k8s.Autorest.HttpOperationException e)
        {
            var why = e.Response.StatusCode == HttpStatusCode.NotFound
                ? "the VirtualMachineMigration resource (or the namespace) does not exist: install the CRDs (crds/) or check -n"
                : $"{(int)e.Response.StatusCode} {e.Response.Content}";
            await Console.Error.WriteLineAsync($"vmctl migrate: cannot create the migration of {ns}/{vm}: {why}");
            return null;
        }
        catch (HttpRequestException e)
        {
            await Console.Error.WriteLineAsync($"vmctl migrate: cannot reach the API server: {e.Message}");
            return null;
        }
    }

    private static async Task<int> FollowAsync(Kubernetes client, string ns, string name, CancellationToken ct)
    {
        JsonObject? status = null;
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async progress =>
            {
                var task = progress.AddTask($"{name}: Pending", maxValue: 100);
                while (!ct.IsCancellationRequested)
                {
                    var obj = JsonNode.Parse(((JsonElement)await client.CustomObjects.GetNamespacedCustomObjectAsync(Group, Version, ns, Plural, name, ct)).GetRawText()) as JsonObject;
                    status = obj?["status"] as JsonObject;
                    var phase = status?["phase"]?.GetValue<string>() ?? "Pending";
                    var percent = status?["progress"]?["percent"]?.GetValue<double>() ?? 0;
                    var sent = status?["progress"]?["transferredBytes"]?.GetValue<long>() ?? 0;
                    var route = status?["sourceHost"] is { } s ? $" {s} -> {status?["targetHost"]}" : "";
                    task.Description = $"{Markup.Escape(name)}{Markup.Escape(route)}: {phase} ({(sent >> 20).ToString(CultureInfo.InvariantCulture)} MiB sent)";
                    task.Value = phase == "Succeeded" ? 100 : percent;
                    if (phase is "Succeeded" or "Failed" or "Cancelled")
                    {
                        task.StopTask();
                        return;
                    }
                    // Polling, not a watch: one GET every half second is nothing for the API server and survives its restarts.
                    await Task.Delay(500, ct);
                }
            });
        var final = status?["phase"]?.GetValue<string>();
        var message = status?["message"]?.GetValue<string>() ?? "";
        if (final == "Succeeded")
        {
            Console.WriteLine($"{name}: Succeeded, downtime {status?["downtime"]?.GetValue<string>() ?? "?"}: {message}");
            return 0;
        }
        await Console.Error.WriteLineAsync($"{name}: {final ?? "interrupted"}: {message}");
        return 1;
    }
}
