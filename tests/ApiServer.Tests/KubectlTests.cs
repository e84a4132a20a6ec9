using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Vmk.ApiServer.Tests;

/// <summary>The real kubectl on this machine against the server: what a user types must work unchanged.</summary>
public sealed class KubectlTests : IClassFixture<ServerFixture>, IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly TestServer _server;
    private readonly Kubectl _kubectl;

    public KubectlTests(ServerFixture fixture)
    {
        _server = fixture.Server;
        _kubectl = new Kubectl(_server.Kubeconfig);
    }

    public void Dispose() => _kubectl.Dispose();

    private async Task<string> NewNamespaceAsync()
    {
        var ns = "t-" + Guid.NewGuid().ToString("N")[..8];
        await _kubectl.ApplyAsync($"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
        return ns;
    }

    private static string Vm(string name, string extraSpec = "", string extraMeta = "") => $"""
        apiVersion: vmkernel.io/v1alpha1
        kind: VirtualMachine
        metadata:
          name: {name}
        {extraMeta}
        spec:
          memory:
            size: 256Mi
          boot:
            kernel: /var/lib/vmk/guest/vmlinux
        {extraSpec}
        """;

    [Fact]
    public async Task Apply_of_the_examples_then_get_shows_the_printer_columns()
    {
        var examples = Path.Combine(AppContext.BaseDirectory, "examples");
        var applied = await _kubectl.OkAsync("apply", "-f", examples);
        Assert.Contains("datastore.vmkernel.io/local created", applied);
        Assert.Contains("portgroup.vmkernel.io/vm-network created", applied);
        Assert.Contains("virtualmachine.vmkernel.io/test-guest created", applied);

        var vms = await _kubectl.OkAsync("get", "vm", "-n", "default");
        var lines = vms.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^NAME\s+PHASE\s+HOST\s+MEMORY\s+IP\s+READY\s+AGE$", lines[0]);
        Assert.Matches(@"^test-guest\s+256Mi\s+\d+s$", lines[1]);

        var wide = await _kubectl.OkAsync("get", "vm", "test-guest", "-o", "wide");
        Assert.Contains("RUN POLICY", wide);
        Assert.Contains("Always", wide);

        var pg = await _kubectl.OkAsync("get", "pg");
        Assert.Matches(@"vm-network\s+0\s+vxlan\s+10\.250\.0\.0/24", pg);

        // The category lists every kind of the project at once.
        var all = await _kubectl.OkAsync("get", "vmkernel", "-A");
        Assert.Contains("datastore.vmkernel.io/local", all);
        Assert.Contains("virtualmachine.vmkernel.io/test-guest", all);

        // Applying again changes nothing: no new generation. (kubectl still sends the VM's lists, which
        // differ from the live ones by their schema defaults, exactly as against kube-apiserver.)
        var again = await _kubectl.OkAsync("apply", "-f", examples);
        Assert.Contains("datastore.vmkernel.io/local unchanged", again);
        Assert.Equal("1", (await _kubectl.OkAsync("get", "vm", "test-guest", "-o", "jsonpath={.metadata.generation}")).Trim());
    }

    [Fact]
    public async Task Get_watch_prints_the_current_row_then_changes()
    {
        var ns = await NewNamespaceAsync();
        await _kubectl.ApplyAsync(Vm("watched"), "-n", ns);
        using var watch = _kubectl.Stream("get", "vm", "-n", ns, "-w");
        await watch.WaitForLineAsync(l => l.StartsWith("watched", StringComparison.Ordinal), Deadline);

        using var client = _server.Client();
        await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(
            new V1Patch("{\"status\":{\"phase\":\"Running\",\"host\":\"host-a\"}}", V1Patch.PatchType.MergePatch),
            "vmkernel.io", "v1alpha1", ns, "virtualmachines", "watched");
        var line = await watch.WaitForLineAsync(l => l.Contains("Running", StringComparison.Ordinal), Deadline);
        Assert.Matches(@"^watched\s+Running\s+host-a\s+256Mi", line);
    }

    [Fact]
    public async Task Describe_shows_spec_and_events_of_the_object()
    {
        var ns = await NewNamespaceAsync();
        await _kubectl.ApplyAsync(Vm("described"), "-n", ns);
        var uid = (await _kubectl.OkAsync("get", "vm", "described", "-n", ns, "-o", "jsonpath={.metadata.uid}")).Trim();
        using var client = _server.Client();
        await client.CoreV1.CreateNamespacedEventAsync(new Corev1Event
        {
            Metadata = new V1ObjectMeta { Name = "described.1", NamespaceProperty = ns },
            InvolvedObject = new V1ObjectReference { ApiVersion = "vmkernel.io/v1alpha1", Kind = "VirtualMachine", Name = "described", NamespaceProperty = ns, Uid = uid },
            Reason = "Scheduled",
            Message = "placed on host-a",
            Type = "Normal",
            Count = 1,
            FirstTimestamp = DateTime.UtcNow,
            LastTimestamp = DateTime.UtcNow,
            Source = new V1EventSource { Component = "vm-operator" },
        }, ns);

        var text = await _kubectl.OkAsync("describe", "vm", "described", "-n", ns);
        Assert.Contains("Kind:         VirtualMachine", text);
        Assert.Matches(@"Size:\s+256Mi", text);
        Assert.Matches(@"Normal\s+Scheduled\s+.*vm-operator\s+placed on host-a", text);
    }

    [Fact]
    public async Task Explain_describes_the_schema_fields()
    {
        var spec = await _kubectl.OkAsync("explain", "virtualmachine.spec");
        Assert.Contains("KIND:       VirtualMachine", spec);
        Assert.Contains("runPolicy", spec);
        Assert.Contains("enum: Always, Halted, Manual, RerunOnFailure, ....", spec);
        Assert.Contains("memory\t<Object> -required-", spec);

        var size = await _kubectl.OkAsync("explain", "vm.spec.memory.size");
        Assert.Contains("Guest memory size", size);

        var ds = await _kubectl.OkAsync("explain", "datastore.spec.device");
        Assert.Contains("path\t<string> -required-", ds);
    }

    [Fact]
    public async Task Patch_merge_and_json_change_the_spec_and_bump_generation()
    {
        var ns = await NewNamespaceAsync();
        await _kubectl.ApplyAsync(Vm("patched"), "-n", ns);
        await _kubectl.OkAsync("patch", "vm", "patched", "-n", ns, "--type", "merge", "-p", "{\"spec\":{\"cpu\":{\"cores\":2}}}");
        await _kubectl.OkAsync("patch", "vm", "patched", "-n", ns, "--type", "json", "-p", "[{\"op\":\"replace\",\"path\":\"/spec/memory/size\",\"value\":\"1Gi\"}]");
        var got = await _kubectl.OkAsync("get", "vm", "patched", "-n", ns, "-o", "jsonpath={.metadata.generation} {.spec.cpu.cores} {.spec.cpu.sockets} {.spec.memory.size}");
        Assert.Equal("3 2 1 1Gi", got.Trim());

        var failed = await _kubectl.RunAsync("patch", "vm", "patched", "-n", ns, "--type", "json", "-p", "[{\"op\":\"test\",\"path\":\"/spec/memory/size\",\"value\":\"2Gi\"}]");
        Assert.NotEqual(0, failed.ExitCode);
        Assert.True(failed.Stderr.Contains("testing value /spec/memory/size failed", StringComparison.Ordinal), failed.ToString());
    }

    [Fact]
    public async Task Delete_with_a_finalizer_pending_keeps_the_object_until_the_finalizer_is_removed()
    {
        var ns = await NewNamespaceAsync();
        await _kubectl.ApplyAsync(Vm("guarded", extraMeta: "  finalizers:\n  - vmkernel.io/test-protection"), "-n", ns);
        await _kubectl.OkAsync("delete", "vm", "guarded", "-n", ns, "--wait=false");

        var stamp = await _kubectl.OkAsync("get", "vm", "guarded", "-n", ns, "-o", "jsonpath={.metadata.deletionTimestamp}");
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", stamp.Trim());

        // A new finalizer may not be added while the object is being deleted.
        var add = await _kubectl.RunAsync("patch", "vm", "guarded", "-n", ns, "--type", "json", "-p", "[{\"op\":\"add\",\"path\":\"/metadata/finalizers/-\",\"value\":\"x/y\"}]");
        Assert.NotEqual(0, add.ExitCode);
        Assert.Contains("no new finalizers can be added", add.Stderr);

        await _kubectl.OkAsync("patch", "vm", "guarded", "-n", ns, "--type", "json", "-p", "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]");
        var gone = await _kubectl.RunAsync("get", "vm", "guarded", "-n", ns);
        Assert.NotEqual(0, gone.ExitCode);
        Assert.Contains("virtualmachines.vmkernel.io \"guarded\" not found", gone.Stderr);
    }

    [Fact]
    public async Task Apply_of_an_invalid_manifest_names_every_offending_field()
    {
        var ns = await NewNamespaceAsync();
        var r = await _kubectl.RunWithInputAsync("""
            apiVersion: vmkernel.io/v1alpha1
            kind: VirtualMachine
            metadata:
              name: broken
            spec:
              runPolicy: Sometimes
              cpu:
                cores: 0
              memory:
                size: lots
              disks:
              - name: d
            """, "apply", "-n", ns, "-f", "-");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("The VirtualMachine \"broken\" is invalid", r.Stderr);
        Assert.Contains("spec.cpu.cores: Invalid value: 0: spec.cpu.cores in body should be greater than or equal to 1", r.Stderr);
        Assert.Contains("spec.runPolicy: Unsupported value: \"Sometimes\"", r.Stderr);
        Assert.Contains("spec.memory.size: Invalid value: \"lots\"", r.Stderr);
        Assert.Contains("spec.disks[0].datastore: Required value", r.Stderr);
        Assert.NotEqual(0, (await _kubectl.RunAsync("get", "vm", "broken", "-n", ns)).ExitCode);

        var unknown = await _kubectl.RunWithInputAsync(Vm("typo", extraSpec: "  memroy: 1"), "apply", "-n", ns, "-f", "-");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("strict decoding error: unknown field \"spec.memroy\"", unknown.Stderr);
    }

    [Fact]
    public async Task Server_side_apply_creates_updates_and_removes_dropped_fields()
    {
        var ns = await NewNamespaceAsync();
        var first = Vm("ssa", extraSpec: "  runPolicy: Halted\n  ha:\n    restartPriority: High");
        Assert.Contains("serverside-applied", await _kubectl.ApplyAsync(first, "-n", ns, "--server-side"));
        var second = Vm("ssa", extraSpec: "  runPolicy: Manual");
        await _kubectl.ApplyAsync(second, "-n", ns, "--server-side");
        var got = await _kubectl.OkAsync("get", "vm", "ssa", "-n", ns, "-o", "jsonpath={.spec.runPolicy} {.spec.ha.restartPriority}");
        // ha.restartPriority was applied before and dropped now: removed, then defaulted by the schema.
        Assert.Equal("Manual Medium", got.Trim());
    }

    [Fact]
    public async Task Core_types_work_through_apply_and_get()
    {
        var ns = await NewNamespaceAsync();
        await _kubectl.ApplyAsync("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n", "-n", ns);
        await _kubectl.ApplyAsync("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"2\"\n  b: \"3\"\n", "-n", ns);
        Assert.Equal("{\"a\":\"2\",\"b\":\"3\"}", (await _kubectl.OkAsync("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.data}")).Trim());
        Assert.Matches(@"settings\s+2\s+\d+s", await _kubectl.OkAsync("get", "cm", "-n", ns));

        await _kubectl.ApplyAsync("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2\n", "-n", ns);
        Assert.Equal("aHVudGVyMg==", (await _kubectl.OkAsync("get", "secret", "creds", "-n", ns, "-o", "jsonpath={.data.password}")).Trim());
        Assert.Matches(@"creds\s+Opaque\s+1\s+\d+s", await _kubectl.OkAsync("get", "secrets", "-n", ns));

        await _kubectl.OkAsync("delete", "namespace", ns);
        var nsGone = await _kubectl.RunAsync("get", "namespace", ns);
        Assert.NotEqual(0, nsGone.ExitCode);
    }

    [Fact]
    public async Task Imperative_create_commands_work_for_namespaces_configmaps_and_secrets()
    {
        // kubectl's typed create commands send protobuf bodies.
        var ns = "imp-" + Guid.NewGuid().ToString("N")[..8];
        Assert.Contains($"namespace/{ns} created", await _kubectl.OkAsync("create", "namespace", ns));
        await _kubectl.OkAsync("create", "configmap", "cfg", "-n", ns, "--from-literal=mode=fast", "--from-literal=level=3");
        await _kubectl.OkAsync("create", "secret", "generic", "pw", "-n", ns, "--from-literal=password=s3cret");
        Assert.Equal("3 fast", (await _kubectl.OkAsync("get", "cm", "cfg", "-n", ns, "-o", "jsonpath={.data.level} {.data.mode}")).Trim());
        Assert.Equal("czNjcmV0", (await _kubectl.OkAsync("get", "secret", "pw", "-n", ns, "-o", "jsonpath={.data.password}")).Trim());
        Assert.Matches(@"^" + ns + @"\s+Active\s+\d+s$", (await _kubectl.OkAsync("get", "ns", ns, "--no-headers")).Trim());
    }

    [Fact]
    public async Task A_crd_created_through_the_api_is_served_and_its_deletion_removes_its_objects()
    {
        var crd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata:
              name: widgets.example.vmk.io
            spec:
              group: example.vmk.io
              scope: Namespaced
              names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wdg]}
              versions:
              - name: v1
                served: true
                storage: true
                additionalPrinterColumns:
                - {name: Size, type: integer, jsonPath: .spec.size}
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec:
                        type: object
                        properties:
                          size: {type: integer, minimum: 1, default: 3}
            """;
        await _kubectl.ApplyAsync(crd);
        Assert.Contains("Established", await _kubectl.OkAsync("get", "crd", "widgets.example.vmk.io", "-o", "jsonpath={.status.conditions[*].type}"));
        await _kubectl.ApplyAsync("apiVersion: example.vmk.io/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: default\nspec: {}\n");
        Assert.Matches(@"w1\s+3\s*$", (await _kubectl.OkAsync("get", "wdg", "-n", "default", "--no-headers")).Trim());
        await _kubectl.OkAsync("delete", "crd", "widgets.example.vmk.io");
        var gone = await _kubectl.RunAsync("get", "widgets.example.vmk.io", "-n", "default");
        Assert.NotEqual(0, gone.ExitCode);
        Assert.DoesNotContain(_server.Host.Store.All(), o => o.Resource == "example.vmk.io/widgets");
    }

    [Fact]
    public async Task Wait_for_a_condition_returns_as_soon_as_the_status_has_it()
    {
        var ns = await NewNamespaceAsync();
        await _kubectl.ApplyAsync(Vm("waited"), "-n", ns);
        var waiting = _kubectl.RunAsync("wait", "--for=condition=Ready", "vm/waited", "-n", ns, "--timeout=20s");
        using var client = _server.Client();
        await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(
            new V1Patch("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Booted\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}", V1Patch.PatchType.MergePatch),
            "vmkernel.io", "v1alpha1", ns, "virtualmachines", "waited");
        var r = await waiting;
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("condition met", r.Stdout);
        Assert.Matches(@"^waited\s+\S*\s*256Mi\s+True\s+\d+s$", (await _kubectl.OkAsync("get", "vm", "waited", "-n", ns, "--no-headers")).Trim());
    }
}
