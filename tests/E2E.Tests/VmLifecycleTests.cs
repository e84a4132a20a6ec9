namespace Vmk.E2E.Tests;

/// <summary>
/// What the README promises: `kubectl apply -f examples/` on a standalone machine boots the guest, Kubernetes
/// shows it Running on a host with its IP, its console and its disk work, and `kubectl delete` takes it all away.
/// </summary>
[Collection("qemu")]
[Trait("Category", "Slow")]
public sealed class VmLifecycleTests(OneHostStandalone fixture) : IClassFixture<OneHostStandalone>
{
    private readonly StandaloneRun _run = fixture.Run;

    [Fact]
    public async Task Examples_boot_a_guest_that_kubectl_shows_running_with_its_host_and_ip()
    {
        _run.Track("test-guest");
        await _run.Kubectl.ApplyAsync(_run.Examples());

        var vm = await Vms.WaitRunningAsync(_run, "test-guest");
        Assert.Equal("host-1", Vms.Host(vm));
        await Vms.WaitConsoleAsync(_run, "test-guest", "VMK-GUEST-UP");
        var ips = await Eventually.WaitAsync(async () =>
        {
            var now = await _run.Kubectl.GetAsync("vm", "test-guest");
            var ips = Vms.GuestIps(now);
            return (ips.Count > 0, ips, Vms.Describe(now));
        }, Vms.BootDeadline, "a guest IP in status.guest.ips");
        Assert.All(ips, ip => Assert.True(System.Net.IPAddress.TryParse(ip, out _), $"'{ip}' is not an IP address"));
        Assert.Equal("True", (string?)Vms.Condition(vm, "Ready")?["status"]);

        // What `kubectl get vmkernel` shows a user: the VM, its datastore and port group, and the host.
        var table = await _run.Kubectl.RunAsync("get", "vmkernel");
        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.Contains("test-guest", table.Stdout);
        Assert.Contains("Running", table.Stdout);
        Assert.Contains("host-1", table.Stdout);
    }

    [Fact]
    public async Task Guest_disk_sequence_advances_and_delete_removes_the_qemu_and_the_disks()
    {
        var name = _run.Track(Vms.UniqueName("e2e-disk"));
        await _run.Kubectl.ApplyAsync(_run.ExampleDatastore() + "\n---\n" + File.ReadAllText(Repo.PathOf("examples", "portgroup.yaml")) + "\n---\n" + Vms.Manifest(name));
        await Vms.WaitRunningAsync(_run, name);
        await Vms.WaitConsoleAsync(_run, name, "VMK-DISK-SEQ");
        var first = Vms.DiskSequence(_run.Console(name));
        await Eventually.WaitAsync(() =>
        {
            var now = Vms.DiskSequence(_run.Console(name));
            return Task.FromResult((now >= first + 2, now, $"VMK-DISK-SEQ {now} (first seen {first})"));
        }, TimeSpan.FromSeconds(120), "the guest's disk sequence advancing");

        Assert.Single(_run.QemuProcesses(name));
        var disks = await Vms.DisksOfAsync(_run, name);
        Assert.NotEmpty(disks);

        var delete = await _run.Kubectl.RunAsync("delete", "vm", name, "--timeout=240s");
        Assert.True(delete.ExitCode == 0, delete.ToString());
        Assert.Null(await _run.Kubectl.GetAsync("vm", name));
        await Eventually.WaitAsync(() =>
        {
            var left = _run.QemuProcesses(name);
            return Task.FromResult((left.Count == 0, 0, $"QEMU pids {string.Join(',', left)}"));
        }, TimeSpan.FromSeconds(60), $"{name}'s QEMU gone");
        await Eventually.WaitAsync(async () =>
        {
            var left = await Vms.DisksOfAsync(_run, name);
            return (left.Count == 0, 0, $"disks {string.Join(',', left)}");
        }, TimeSpan.FromSeconds(60), $"{name}'s disks removed from the datastore");
    }
}
