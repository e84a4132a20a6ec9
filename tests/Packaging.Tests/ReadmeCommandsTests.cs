using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Vmk.Packaging.Tests;

/// <summary>
/// Every command of the README's "Install on a cluster" section is run here, the way this machine allows: against
/// the standalone API server where it serves the kinds involved (CRDs, Secrets, custom objects), with helm's
/// rendering (install = template plus the cluster) and kubectl's client-side dry run where it does not (Nodes,
/// workloads, RBAC). A command this test does not know fails it, so the README cannot grow an unchecked command.
/// </summary>
[Trait("Category", "Slow")]
public sealed partial class ReadmeCommandsTests : IClassFixture<StandaloneServer>
{
    private readonly StandaloneServer _server;

    public ReadmeCommandsTests(StandaloneServer server) => _server = server;

    [Fact]
    public async Task Every_install_command_in_the_README_runs()
    {
        var commands = InstallCommands();
        Assert.True(commands.Count >= 10, $"expected the install section's commands, found {commands.Count}:\n" + string.Join('\n', commands));
        var k = _server.Kubectl;
        var env = new Dictionary<string, string> { ["KUBECONFIG"] = _server.Kubeconfig };
        foreach (var command in commands)
        {
            var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            switch (words)
            {
                case ["HELM=$(scripts/install-helm.sh)"]:
                    Assert.True(File.Exists(await Helm.PathAsync()));
                    break;
                case ["kubectl", "label", "node", "NODE", var label]:
                    // The standalone server has no Nodes: the label must be exactly what the DaemonSet selects on.
                    var (key, value) = (label[..label.IndexOf('=', StringComparison.Ordinal)], label[(label.IndexOf('=', StringComparison.Ordinal) + 1)..]);
                    var daemonSet = Manifests.Parse(await Helm.TemplateAsync()).OfKind("DaemonSet").Single();
                    Assert.Equal(value, (string?)daemonSet["spec"]!["template"]!["spec"]!["nodeSelector"]![key]);
                    break;
                case ["$HELM", "install", var release, var chart, .. var flags]:
                    // helm install = helm's rendering and values-schema check + sending the objects to a cluster;
                    // the standalone server serves no Deployments, so the rendering is what runs here.
                    var rendered = await Tool.OkAsync(await Helm.PathAsync(),
                        ["template", release, Repo.PathOf(chart), .. flags.Where(f => f != "--create-namespace").Select(RepoPathIfFile)]);
                    var objects = Manifests.Parse(rendered);
                    var ns = flags[Array.IndexOf(flags, "--namespace") + 1];
                    Assert.Equal(ns, (string?)Assert.Single(objects.OfKind("Deployment"))["metadata"]!["namespace"]);
                    Assert.Equal(ns, (string?)Assert.Single(objects.OfKind("DaemonSet"))["metadata"]!["namespace"]);
                    break;
                case ["kubectl", "apply", "--server-side", "-f", "deploy/crds.yaml"]:
                    Assert.Contains("virtualmachines.vmkernel.io serverside-applied", await k.OkAsync(null, "apply", "--server-side", "-f", Repo.PathOf("deploy", "crds.yaml")));
                    break;
                case ["deploy/make-certificates.sh"]:
                    var made = await Tool.RunAsync(Repo.PathOf("deploy", "make-certificates.sh"), [], environment: env);
                    Assert.True(made.ExitCode == 0, made.ToString());
                    await k.OkAsync(null, "get", "secret", "vmkernel-vmkerneld-tls", "vmkernel-vm-operator-tls", "-n", "vmkernel-system");
                    break;
                case ["kubectl", "apply", "-f", "deploy/default-computecluster.yaml"]:
                    Assert.Contains("computecluster.vmkernel.io/default", await k.OkAsync(null, "apply", "-f", Repo.PathOf("deploy", "default-computecluster.yaml")));
                    break;
                case ["kubectl", "apply", "-f", var file] when file is "deploy/vmkernel-operator.yaml" or "deploy/monitoring.yaml":
                    // Workloads and Prometheus Operator kinds: the standalone server does not serve them, so the
                    // file must be the chart's current rendering (KubernetesSchemaTests checks it against the APIs).
                    var check = await Tool.RunAsync(Repo.PathOf("scripts", "render-deploy.sh"), ["--check"]);
                    Assert.True(check.ExitCode == 0, check.ToString());
                    Assert.NotEmpty(Manifests.Parse(Repo.Read(file.Split('/'))).Objects);
                    break;
                case ["kubectl", "create", "clusterrolebinding" or "rolebinding", _, var roleFlag, var groupFlag, .. var rest]:
                    var binding = JsonNode.Parse(await k.OkAsync(null, ["create", words[2], words[3], roleFlag, groupFlag, .. rest, "--dry-run=client", "-o", "json"]))!;
                    var role = (string)binding["roleRef"]!["name"]!;
                    Assert.Equal(roleFlag["--clusterrole=".Length..], role);
                    Assert.Equal(groupFlag["--group=".Length..], (string?)binding["subjects"]![0]!["name"]);
                    // The role it binds is one the chart installs.
                    Assert.Contains(Manifests.Parse(await Helm.TemplateAsync()).OfKind("ClusterRole"), r => Manifests.Name(r) == role);
                    break;
                default:
                    Assert.Fail($"README command not exercised by any test: `{command}`; teach ReadmeCommandsTests how to run it");
                    break;
            }
        }
    }

    private static string RepoPathIfFile(string flag) => File.Exists(Repo.PathOf(flag)) ? Repo.PathOf(flag) : flag;

    /// <summary>The command lines of the ```sh blocks between "## Install on a cluster" and the next section.</summary>
    private static List<string> InstallCommands()
    {
        var readme = Repo.Read("README.md");
        var start = readme.IndexOf("\n## Install on a cluster", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no '## Install on a cluster' section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var section = readme[start..(end < 0 ? readme.Length : end)];
        return ShellBlock().Matches(section)
            .SelectMany(m => m.Groups[1].Value.Split('\n'))
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .ToList();
    }

    [GeneratedRegex("```sh\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex ShellBlock();
}
