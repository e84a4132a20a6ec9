using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Protos;

namespace Vmk.E2E.Tests;

/// <summary>VirtualMachine manifests and what a user looks at to see one work.</summary>
public static partial class Vms
{
    public static readonly TimeSpan BootDeadline = TimeSpan.FromSeconds(300);

    public static string UniqueName(string prefix) => $"{prefix}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>examples/virtualmachine.yaml under another name (same guest, disk on 'local', NIC on 'vm-network').</summary>
    public static string Manifest(string name, string? runPolicy = null) =>
        File.ReadAllText(Repo.PathOf("examples", "virtualmachine.yaml"))
            .Replace("name: test-guest", $"name: {name}", StringComparison.Ordinal)
            .Replace("app: test-guest", $"app: {name}", StringComparison.Ordinal)
            .Replace("runPolicy: Always", $"runPolicy: {runPolicy ?? "Always"}", StringComparison.Ordinal);

    public static string? Phase(JsonNode? vm) => (string?)vm?["status"]?["phase"];

    public static string? Host(JsonNode? vm) => (string?)vm?["status"]?["host"];

    public static IReadOnlyList<string> GuestIps(JsonNode? vm) =>
        vm?["status"]?["guest"]?["ips"]?.AsArray().Select(i => (string)i!).ToList() ?? [];

    public static JsonNode? Condition(JsonNode? vm, string type) =>
        vm?["status"]?["conditions"]?.AsArray().FirstOrDefault(c => (string?)c?["type"] == type);

    public static string Describe(JsonNode? vm) => vm?["status"]?.ToJsonString() ?? "(no status)";

    public static Task<JsonNode> WaitRunningAsync(StandaloneRun run, string name) =>
        Eventually.WaitAsync(async () =>
        {
            var vm = await run.Kubectl.GetAsync("vm", name);
            return (Phase(vm) == "Running" && !string.IsNullOrEmpty(Host(vm)), vm!, Describe(vm));
        }, BootDeadline, $"VirtualMachine {name} Running with a host");

    public static Task WaitConsoleAsync(StandaloneRun run, string name, string marker) =>
        Eventually.WaitAsync(() =>
        {
            var console = run.Console(name);
            return Task.FromResult((console.Contains(marker, StringComparison.Ordinal), 0, console.Length > 600 ? console[^600..] : console));
        }, BootDeadline, $"{marker} on {name}'s console");

    /// <summary>The highest VMK-DISK-SEQ the guest printed (it writes a sequence to its disk once a second).</summary>
    public static int DiskSequence(string console) =>
        DiskSeq().Matches(console).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max();

    /// <summary>The virtual disks on the datastore whose name mentions the VM, as every host's daemon lists them.</summary>
    public static async Task<IReadOnlyList<string>> DisksOfAsync(StandaloneRun run, string vmName, string datastore = "local")
    {
        var names = new HashSet<string>();
        foreach (var host in run.Status()["hosts"]!.AsArray())
        {
            using var channel = NodeDaemonChannel.Create(new Uri($"https://{(string)host!["grpc"]!}"), Path.Combine(run.DataDirectory, "pki", "operator"), "tls.crt", "tls.key");
            var client = new DatastoreService.DatastoreServiceClient(channel);
            try
            {
                var disks = await client.ListDisksAsync(new DatastoreRef { Name = datastore }, deadline: DateTime.UtcNow.AddSeconds(30));
                foreach (var d in disks.Disks.Where(d => d.Name.Contains(vmName, StringComparison.Ordinal)))
                {
                    names.Add(d.Name);
                }
            }
            catch (Grpc.Core.RpcException e) when (e.StatusCode is Grpc.Core.StatusCode.NotFound or Grpc.Core.StatusCode.FailedPrecondition)
            {
                // The datastore is not mounted on that host: it holds none of the VM's disks there.
            }
        }
        return [.. names];
    }

    [GeneratedRegex(@"VMK-DISK-SEQ (\d+)")]
    private static partial Regex DiskSeq();
}
