namespace Vmk.E2E.Tests;

/// <summary>
/// Two hosts (network namespaces on a fabric bridge): VMs spread over both, each boots; stopping standalone
/// powers them off and removes the namespaces and the bridge.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class MultiHostTests
{
    [Fact]
    public async Task Vms_scale_across_two_hosts_and_a_stop_leaves_nothing_behind()
    {
        await using var run = await StandaloneRun.StartAsync(hosts: 2);
        var hosts = await Eventually.WaitAsync(async () =>
        {
            var list = await run.Kubectl.ListAsync("hosts");
            var ready = list.Where(h => h!["status"]?["conditions"]?.AsArray().Any(c => (string?)c?["type"] == "Ready" && (string?)c["status"] == "True") == true).ToList();
            return (ready.Count == 2, ready.Select(h => (string)h!["metadata"]!["name"]!).ToList(), list.ToJsonString());
        }, TimeSpan.FromSeconds(120), "two Ready Host objects");
        Assert.Equal(["host-1", "host-2"], hosts.Order());

        var names = Enumerable.Range(0, 3).Select(_ => run.Track(Vms.UniqueName("e2e-scale"))).ToList();
        await run.Kubectl.ApplyAsync(run.ExampleDatastore() + "\n---\n" + File.ReadAllText(Repo.PathOf("examples", "portgroup.yaml"))
            + "\n---\n" + string.Join("\n---\n", names.Select(n => Vms.Manifest(n))));
        var placed = new List<string>();
        foreach (var name in names)
        {
            placed.Add(Vms.Host(await Vms.WaitRunningAsync(run, name))!);
        }
        foreach (var name in names)
        {
            await Vms.WaitConsoleAsync(run, name, "VMK-GUEST-UP");
            Assert.Single(run.QemuProcesses(name));
        }
        // Spread by load: three equal VMs on two equal hosts use both.
        Assert.Equal(2, placed.Distinct().Count());

        Assert.Equal(0, await run.StopAsync());
        foreach (var name in names)
        {
            Assert.Empty(run.QemuProcesses(name));
        }
        Assert.Empty(await run.LeftoversAsync());
    }
}
