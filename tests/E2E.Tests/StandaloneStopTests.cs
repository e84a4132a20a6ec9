using Vmk.NodeDaemon.Client;
using Vmk.NodeDaemon.Protos;

namespace Vmk.E2E.Tests;

/// <summary>
/// Stopping `vmctl standalone` (Ctrl-C) leaves a clean machine: no QEMU, no daemon or DHCP server, none of the port
/// group's bridges and tunnels; the objects stay, and a new start on the same directory boots the VM again.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class StandaloneStopTests
{
    [Fact]
    public async Task Stop_powers_off_the_vms_and_removes_what_the_run_created_and_a_restart_boots_them_again()
    {
        await using var run = await StandaloneRun.StartAsync(hosts: 1);
        run.Track("test-guest");
        await run.Kubectl.ApplyAsync(run.Examples());
        await Vms.WaitRunningAsync(run, "test-guest");
        await Vms.WaitConsoleAsync(run, "test-guest", "VMK-GUEST-UP");
        var devices = new List<string>();
        var host = run.Status()["hosts"]![0]!;
        using (var channel = NodeDaemonChannel.Create(new Uri($"https://{(string)host["grpc"]!}"), Path.Combine(run.DataDirectory, "pki", "operator"), "tls.crt", "tls.key"))
        {
            var list = await new PortGroupService.PortGroupServiceClient(channel).ListAsync(new ListPortGroupsRequest());
            devices.AddRange(list.PortGroups.SelectMany(p => new[] { p.Bridge, p.Uplink }).Where(d => d.Length > 0));
        }
        Assert.NotEmpty(devices);

        Assert.Equal(0, await run.StopAsync());
        Assert.Empty(run.QemuProcesses("test-guest"));
        Assert.Empty(await run.LeftoversAsync());
        var links = await StandaloneRun.LinkNamesAsync();
        Assert.DoesNotContain(devices, links.Contains);

        // The declared state survived: the same directory starts again and the VM boots again.
        await using var again = await StandaloneRun.StartAsync(hosts: 1, run.DataDirectory);
        // Its status still says Running from before the stop: what counts is a QEMU again, and Running after it.
        await Eventually.WaitAsync(() =>
        {
            var pids = again.QemuProcesses("test-guest");
            return Task.FromResult((pids.Count == 1, 0, $"QEMU pids [{string.Join(',', pids)}]"));
        }, Vms.BootDeadline, "test-guest's QEMU started again by the restarted run");
        await Vms.WaitRunningAsync(again, "test-guest");
    }
}
