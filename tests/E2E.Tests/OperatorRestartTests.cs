namespace Vmk.E2E.Tests;

/// <summary>
/// The operator is killed (SIGKILL) while it is placing and booting VMs: standalone restarts it, and it converges
/// to the same state as if nothing had happened: every VM Running, one QEMU each, one set of disks each.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class OperatorRestartTests(OneHostStandalone fixture) : IClassFixture<OneHostStandalone>
{
    private readonly StandaloneRun _run = fixture.Run;

    [Fact]
    public async Task Operator_killed_mid_reconcile_is_restarted_and_converges_without_duplicates()
    {
        var names = new[] { _run.Track(Vms.UniqueName("e2e-crash")), _run.Track(Vms.UniqueName("e2e-crash")) };
        await _run.Kubectl.ApplyAsync(_run.ExampleDatastore() + "\n---\n" + File.ReadAllText(Repo.PathOf("examples", "portgroup.yaml"))
            + "\n---\n" + string.Join("\n---\n", names.Select(n => Vms.Manifest(n))));

        // Mid-reconcile: the first VM has been picked up (a phase, or a host) but is not Running yet.
        await Eventually.WaitAsync(async () =>
        {
            var vm = await _run.Kubectl.GetAsync("vm", names[0]);
            return (Vms.Phase(vm) is not null || Vms.Host(vm) is not null, 0, Vms.Describe(vm));
        }, TimeSpan.FromSeconds(120), "the operator starting to reconcile the VM");
        var before = _run.Status()["operator"]!;
        var pid = (int)before["pid"]!;
        var starts = (int)before["starts"]!;
        System.Diagnostics.Process.GetProcessById(pid).Kill();

        await Eventually.WaitAsync(() =>
        {
            var now = _run.Status()["operator"]!;
            return Task.FromResult(((int)now["starts"]! > starts && now["pid"] is not null && (int?)now["pid"] != pid, 0, now.ToJsonString()));
        }, TimeSpan.FromSeconds(90), "standalone restarting the killed operator");

        foreach (var name in names)
        {
            await Vms.WaitRunningAsync(_run, name);
            await Vms.WaitConsoleAsync(_run, name, "VMK-GUEST-UP");
        }
        foreach (var name in names)
        {
            Assert.Single(_run.QemuProcesses(name));
            // The example has one disk: a second would be a duplicate made by the restarted operator.
            Assert.Single(await Vms.DisksOfAsync(_run, name));
        }
        Assert.Equal(names.Length, (await _run.Kubectl.ListAsync("vm")).Count(v => names.Contains((string?)v!["metadata"]!["name"])));

        foreach (var name in names)
        {
            var delete = await _run.Kubectl.RunAsync("delete", "vm", name, "--timeout=240s");
            Assert.True(delete.ExitCode == 0, delete.ToString());
        }
    }
}
