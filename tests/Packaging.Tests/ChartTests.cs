using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Vmk.ApiServer.Yaml;

namespace Vmk.Packaging.Tests;

/// <summary>The chart through the real helm: lint, render with default values and with every option on.</summary>
public sealed class ChartTests
{
    [Theory]
    [InlineData(null)]
    [InlineData(Helm.AllOptionsValues)]
    public async Task Helm_lint_passes(string? valuesFile)
    {
        string[] args = ["lint", "--strict", Repo.PathOf(Helm.Chart), .. valuesFile is null ? Array.Empty<string>() : ["-f", Repo.PathOf(valuesFile)]];
        var r = await Helm.RunAsync(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("1 chart(s) linted, 0 chart(s) failed", r.Stdout);
    }

    [Fact]
    public async Task Default_values_run_a_leader_elected_operator_and_a_privileged_vmkerneld_on_vm_hosts()
    {
        var m = Manifests.Parse(await Helm.TemplateAsync());

        var deployment = m.Single("Deployment", "t-vmkernel-operator-vm-operator");
        Assert.Equal(2, (int)deployment["spec"]!["replicas"]!);
        var pod = deployment["spec"]!["template"]!["spec"]!;
        var args = pod["containers"]![0]!["args"]!.AsArray().Select(a => (string)a!).ToList();
        Assert.Contains("--leader-elect=true", args);
        Assert.Contains("--leader-election-name=vm-operator", args);
        Assert.Contains("--leader-election-namespace=$(POD_NAMESPACE)", args);
        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
        Assert.Equal("ghcr.io/vmkernel/vm-operator:0.1.0", (string)pod["containers"]![0]!["image"]!);

        // Leader election may touch its own Lease and nothing else in the namespace.
        var role = m.Single("Role", "t-vmkernel-operator-vm-operator-leader-election");
        Assert.Equal("vmk", (string)role["metadata"]!["namespace"]!);
        var leaseRules = role["rules"]!.AsArray().Where(r => r!["resources"]!.AsArray().Any(x => (string)x! == "leases")).ToList();
        Assert.Contains(leaseRules, r => r!["verbs"]!.AsArray().Any(v => (string)v! == "create"));
        Assert.Contains(leaseRules, r => r!["resourceNames"]?.AsArray().Any(n => (string)n! == "vm-operator") == true
            && r["verbs"]!.AsArray().Any(v => (string)v! == "update"));
        var binding = m.Single("RoleBinding", "t-vmkernel-operator-vm-operator-leader-election");
        Assert.Equal("t-vmkernel-operator-vm-operator", (string)binding["subjects"]![0]!["name"]!);

        var ds = m.Single("DaemonSet", "t-vmkernel-operator-vmkerneld");
        var dpod = ds["spec"]!["template"]!["spec"]!;
        var container = dpod["containers"]![0]!;
        Assert.True((bool)container["securityContext"]!["privileged"]!);
        Assert.Equal("true", (string)dpod["nodeSelector"]!["vmkernel.io/vm-host"]!);
        Assert.Contains(dpod["tolerations"]!.AsArray(), t => (string)t!["key"]! == "vmkernel.io/vm-host" && (string)t["effect"]! == "NoSchedule");
        var hostPaths = dpod["volumes"]!.AsArray().Where(v => v!["hostPath"] is not null)
            .ToDictionary(v => (string)v!["hostPath"]!["path"]!, v => (string?)v!["hostPath"]!["type"]);
        Assert.Equal("CharDevice", hostPaths["/dev/kvm"]);
        Assert.Equal("CharDevice", hostPaths["/dev/net/tun"]);
        Assert.Equal("DirectoryOrCreate", hostPaths["/var/lib/vmkernel"]);
        Assert.Equal("DirectoryOrCreate", hostPaths["/var/lib/vmkernel/datastores"]);
        var mounts = container["volumeMounts"]!.AsArray().Select(v => (string)v!["mountPath"]!).ToList();
        Assert.Contains("/dev/kvm", mounts);
        Assert.Contains("/dev/net/tun", mounts);
        Assert.Contains("/etc/vmkernel/tls", mounts);
        var dargs = container["args"]!.AsArray().Select(a => (string)a!).ToList();
        Assert.Contains("--tls-dir=/etc/vmkernel/tls", dargs);
        Assert.Contains("--host-name=$(NODE_NAME)", dargs);

        // Monitoring objects need the Prometheus Operator and Grafana: off unless asked for.
        Assert.Empty(m.OfKind("ServiceMonitor"));
        Assert.Empty(m.OfKind("PrometheusRule"));
        Assert.Empty(m.OfKind("ConfigMap"));
        Assert.Equal(6, m.OfKind("CustomResourceDefinition").Count());
        Assert.Single(m.OfKind("ComputeCluster"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData(Helm.AllOptionsValues)]
    public async Task No_two_objects_share_a_kind_and_name(string? valuesFile)
    {
        // Names are derived from the release; a component name must never equal a fixed name such as the
        // user role vmkernel-operator, or helm would render one over the other.
        var m = Manifests.Parse(await Helm.TemplateAsync(valuesFile));
        var duplicates = m.Objects.GroupBy(o => $"{Manifests.Kind(o)} {(string?)o["metadata"]!["namespace"]}/{Manifests.Name(o)}")
            .Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, "rendered twice: " + string.Join(", ", duplicates));
    }

    [Fact]
    public async Task Release_named_vmkernel_gets_the_short_names_deploy_uses()
    {
        var m = Manifests.Parse(await Tool.OkAsync(await Helm.PathAsync(), ["template", "vmkernel", Repo.PathOf(Helm.Chart)]));
        m.Single("Deployment", "vmkernel-vm-operator");
        m.Single("DaemonSet", "vmkernel-vmkerneld");
        m.Single("Secret", "vmkernel-ca");
        m.Single("Secret", "vmkernel-vmkerneld-tls");
        m.Single("Secret", "vmkernel-vm-operator-tls");
    }

    [Fact]
    public async Task Generated_certificates_chain_to_one_CA_with_the_usages_mutual_TLS_checks()
    {
        var m = Manifests.Parse(await Helm.TemplateAsync());
        X509Certificate2 Cert(string secret, string key = "tls.crt") => X509Certificate2.CreateFromPem(
            Encoding.ASCII.GetString(Convert.FromBase64String((string)m.Single("Secret", secret)["data"]![key]!)));

        using var ca = Cert("t-vmkernel-operator-ca");
        using var daemon = Cert("t-vmkernel-operator-vmkerneld-tls");
        using var daemonCa = Cert("t-vmkernel-operator-vmkerneld-tls", "ca.crt");
        using var op = Cert("t-vmkernel-operator-vm-operator-tls");
        Assert.Equal(ca.Thumbprint, daemonCa.Thumbprint);
        Assert.True(ca.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);

        foreach (var (leaf, usage) in new[] { (daemon, "1.3.6.1.5.5.7.3.1"), (op, "1.3.6.1.5.5.7.3.2") })
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid(usage));
            Assert.True(chain.Build(leaf), $"{leaf.Subject} does not chain to the CA for {usage}: "
                + string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
        }

        // The name the operator verifies is in the daemon's certificate.
        var args = m.Single("Deployment", "t-vmkernel-operator-vm-operator")["spec"]!["template"]!["spec"]!["containers"]![0]!["args"]!
            .AsArray().Select(a => (string)a!).ToList();
        var serverName = args.Single(a => a.StartsWith("--vmkerneld-server-name=", StringComparison.Ordinal)).Split('=')[1];
        Assert.Equal("t-vmkernel-operator-vmkerneld.vmk.svc", serverName);
        Assert.True(daemon.MatchesHostname(serverName), $"daemon certificate does not cover {serverName}");
    }

    [Fact]
    public async Task Every_option_on_renders_cert_manager_monitoring_and_dashboards()
    {
        var m = Manifests.Parse(await Helm.TemplateAsync(Helm.AllOptionsValues));

        // cert-manager replaces the generated Secrets; the corporate issuer signs the CA.
        Assert.Empty(m.OfKind("Secret"));
        Assert.Equal(3, m.OfKind("Certificate").Count());
        var caCert = m.Single("Certificate", "vmkernel-ca");
        Assert.Equal("corporate-ca", (string)caCert["spec"]!["issuerRef"]!["name"]!);
        Assert.Equal("ClusterIssuer", (string)caCert["spec"]!["issuerRef"]!["kind"]!);
        Assert.Contains("client auth", m.Single("Certificate", "vmkernel-vm-operator-tls")["spec"]!["usages"]!.AsArray().Select(u => (string)u!));
        Assert.Contains("server auth", m.Single("Certificate", "vmkernel-vmkerneld-tls")["spec"]!["usages"]!.AsArray().Select(u => (string)u!));
        Assert.Single(m.OfKind("Issuer"));

        var monitors = m.OfKind("ServiceMonitor").ToList();
        Assert.Equal(2, monitors.Count);
        Assert.All(monitors, sm =>
        {
            Assert.Equal("vmkernel.io/metrics-job", (string)sm["spec"]!["jobLabel"]!);
            Assert.Equal("kube-prometheus-stack", (string)sm["metadata"]!["labels"]!["release"]!);
        });
        // Each ServiceMonitor selects a Service that carries the job label the alerts select on.
        var services = m.OfKind("Service").ToList();
        Assert.Contains(services, s => (string?)s["metadata"]!["labels"]!["vmkernel.io/metrics-job"] == "vmkerneld");
        Assert.Contains(services, s => (string?)s["metadata"]!["labels"]!["vmkernel.io/metrics-job"] == "vm-operator");

        var rule = m.OfKind("PrometheusRule").Single();
        var fileGroups = YamlJson.ParseDocuments(Repo.Read("monitoring", "rules", "vmkernel-alerts.yaml"))[0]["groups"];
        Assert.True(JsonNode.DeepEquals(fileGroups, rule["spec"]!["groups"]), "PrometheusRule groups differ from monitoring/rules/vmkernel-alerts.yaml");

        var dashboards = m.OfKind("ConfigMap").ToList();
        Assert.Equal(Directory.GetFiles(Repo.PathOf("monitoring", "dashboards"), "*.json").Length, dashboards.Count);
        foreach (var cm in dashboards)
        {
            Assert.Equal("1", (string)cm["metadata"]!["labels"]!["grafana_dashboard"]!);
            Assert.Equal("monitoring", (string)cm["metadata"]!["namespace"]!);
            var (key, json) = cm["data"]!.AsObject().Single();
            var file = key["vmkernel-".Length..];
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(Repo.Read("monitoring", "dashboards", file)), JsonNode.Parse((string)json!)), key);
        }

        var dpod = m.Single("DaemonSet", "vmkernel-vmkerneld")["spec"]!["template"]!["spec"]!;
        var blockDevices = dpod["volumes"]!.AsArray().Where(v => (string?)v!["hostPath"]?["type"] == "BlockDevice")
            .Select(v => (string)v!["hostPath"]!["path"]!).ToList();
        Assert.Equal(["/dev/disk/by-id/wwn-0x600a098038303053453f463045727a41", "/dev/disk/by-id/wwn-0x600a098038303053453f463045727a42"], blockDevices);
        var image = (string)m.Single("Deployment", "vmkernel-vm-operator")["spec"]!["template"]!["spec"]!["containers"]![0]!["image"]!;
        Assert.Equal("registry.example.com/vmkernel/vm-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", image);
        Assert.Equal("production", Manifests.Name(m.OfKind("ComputeCluster").Single()));
    }

    [Theory]
    [InlineData("vmkerneld.accelerator=xen", "vmkerneld.accelerator")]
    [InlineData("operator.replicas=0", "operator.replicas")]
    [InlineData("vmkerneld.sharedDevices[0]=sdb", "vmkerneld.sharedDevices.0")]
    [InlineData("metrics.serviceMonitor.intervall=10s", "intervall")]
    public async Task Values_schema_rejects_a_wrong_value_naming_it(string set, string named)
    {
        var r = await Helm.RunAsync("template", "t", Repo.PathOf(Helm.Chart), "--set", set);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(named, r.Stderr);
    }

    [Fact]
    public async Task User_roles_are_aggregated_into_admin_edit_and_view()
    {
        var m = Manifests.Parse(await Helm.TemplateAsync());
        static HashSet<string> AggregatedTo(JsonObject role) => role["metadata"]!["labels"]!.AsObject()
            .Where(l => l.Key.StartsWith("rbac.authorization.k8s.io/aggregate-to-", StringComparison.Ordinal) && (string)l.Value! == "true")
            .Select(l => l.Key["rbac.authorization.k8s.io/aggregate-to-".Length..]).ToHashSet();
        static bool Allows(JsonObject role, string resource, string verb) => role["rules"]!.AsArray().Any(r =>
            r!["resources"]!.AsArray().Any(x => (string)x! == resource || (string)x! == "*")
            && r["verbs"]!.AsArray().Any(v => (string)v! == verb || (string)v! == "*"));

        var viewer = m.Single("ClusterRole", "vmkernel-viewer");
        var operatorRole = m.Single("ClusterRole", "vmkernel-operator");
        var admin = m.Single("ClusterRole", "vmkernel-admin");
        Assert.Equal(["admin", "edit", "view"], AggregatedTo(viewer).Order());
        Assert.Equal(["admin", "edit"], AggregatedTo(operatorRole).Order());
        Assert.Equal(["admin"], AggregatedTo(admin).Order());

        Assert.True(Allows(viewer, "virtualmachines", "list"));
        Assert.False(Allows(viewer, "virtualmachines", "patch"));
        Assert.True(Allows(operatorRole, "virtualmachines", "patch"), "power is spec.runPolicy");
        Assert.True(Allows(operatorRole, "virtualmachines/console", "create"));
        Assert.True(Allows(operatorRole, "virtualmachinemigrations", "create"));
        Assert.False(Allows(operatorRole, "virtualmachines", "delete"));
        Assert.False(Allows(operatorRole, "datastores", "create"));
        Assert.True(Allows(admin, "datastores", "delete"));
        Assert.True(Allows(admin, "computeclusters", "update"));

        var offline = Manifests.Parse(await Helm.TemplateAsync(null, "--set", "rbac.aggregateToDefaultRoles=false"));
        Assert.Empty(AggregatedTo(offline.Single("ClusterRole", "vmkernel-viewer")));
    }

    [Fact]
    public async Task Rendered_CRDs_are_the_repository_CRDs_kept_on_uninstall()
    {
        var m = Manifests.Parse(await Helm.TemplateAsync());
        var rendered = m.OfKind("CustomResourceDefinition").ToDictionary(Manifests.Name);
        var files = Directory.GetFiles(Repo.PathOf("crds"), "*.yaml");
        Assert.Equal(files.Length, rendered.Count);
        foreach (var file in files)
        {
            var source = (JsonObject)YamlJson.ParseDocuments(File.ReadAllText(file))[0];
            var crd = rendered[Manifests.Name(source)];
            Assert.True(JsonNode.DeepEquals(source["spec"], crd["spec"]), $"{Path.GetFileName(file)}: rendered spec differs");
            Assert.Equal("keep", (string?)crd["metadata"]!["annotations"]?["helm.sh/resource-policy"]);
        }
    }
}
