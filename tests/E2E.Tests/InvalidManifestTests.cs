namespace Vmk.E2E.Tests;

/// <summary>
/// Bad manifests get an answer a person can act on: what the schema can reject is refused by kubectl with the
/// field named (422); what only the operator can judge ends in Ready=False with a reason and the problem named,
/// and the operator keeps serving everything else.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class InvalidManifestTests(OneHostStandalone fixture) : IClassFixture<OneHostStandalone>
{
    private readonly StandaloneRun _run = fixture.Run;

    public static TheoryData<string> BrokenExamples()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Repo.PathOf("examples", "broken"), "*.yaml").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BrokenExamples))]
    public async Task Broken_example_is_rejected_by_kubectl_with_the_field_named(string file)
    {
        var text = File.ReadAllText(Repo.PathOf("examples", "broken", file));
        var field = text.Split('\n').Single(l => l.StartsWith("# rejected: ", StringComparison.Ordinal))["# rejected: ".Length..].Trim();
        var r = await _run.Kubectl.RunWithInputAsync(text, "apply", "-f", "-");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("is invalid", r.Stderr);
        Assert.Contains(field, r.Stderr);
    }

    [Fact]
    public async Task Vm_on_an_unknown_port_group_is_not_ready_with_the_port_group_named()
    {
        var name = _run.Track(Vms.UniqueName("e2e-nopg"));
        await _run.Kubectl.ApplyAsync(_run.ExampleDatastore() + "\n---\n" + Vms.Manifest(name).Replace("portGroup: vm-network", "portGroup: no-such-portgroup", StringComparison.Ordinal));
        var ready = await Eventually.WaitAsync(async () =>
        {
            var vm = await _run.Kubectl.GetAsync("vm", name);
            var c = Vms.Condition(vm, "Ready");
            return ((string?)c?["status"] == "False" && ((string?)c?["message"])?.Contains("no-such-portgroup", StringComparison.Ordinal) == true, c!, Vms.Describe(vm));
        }, TimeSpan.FromSeconds(120), "Ready=False naming the unknown port group");
        Assert.False(string.IsNullOrEmpty((string?)ready["reason"]));
        Assert.Empty(_run.QemuProcesses(name));
        await _run.Kubectl.RunAsync("delete", "vm", name, "--timeout=120s");
    }

    [Fact]
    public async Task Vm_larger_than_any_host_is_not_ready_with_memory_named()
    {
        var name = _run.Track(Vms.UniqueName("e2e-huge"));
        await _run.Kubectl.ApplyAsync(_run.ExampleDatastore() + "\n---\n" + File.ReadAllText(Repo.PathOf("examples", "portgroup.yaml"))
            + "\n---\n" + Vms.Manifest(name).Replace("size: 256Mi", "size: 4Ti", StringComparison.Ordinal));
        var ready = await Eventually.WaitAsync(async () =>
        {
            var vm = await _run.Kubectl.GetAsync("vm", name);
            var c = Vms.Condition(vm, "Ready");
            return ((string?)c?["status"] == "False" && ((string?)c?["message"])?.Contains("memory", StringComparison.OrdinalIgnoreCase) == true, c!, Vms.Describe(vm));
        }, TimeSpan.FromSeconds(120), "Ready=False saying no host has the memory");
        Assert.False(string.IsNullOrEmpty((string?)ready["reason"]));
        Assert.Empty(_run.QemuProcesses(name));
        await _run.Kubectl.RunAsync("delete", "vm", name, "--timeout=120s");
    }
}
