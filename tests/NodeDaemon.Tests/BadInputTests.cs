using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>Bad requests get a status code that says what kind of problem it is and a message that says what to do.</summary>
public sealed class BadInputTests(DaemonFixture fixture) : IClassFixture<DaemonFixture>
{
    private readonly DaemonClient _client = fixture.Client;

    [Fact]
    public async Task Unknown_vms_are_not_found_for_every_call()
    {
        var calls = new Func<Task>[]
        {
            async () => await _client.Vms.GetAsync(new VmRef { Name = "no-such-vm" }),
            async () => await _client.Vms.StartAsync(new VmRef { Name = "no-such-vm" }),
            async () => await _client.Vms.StopAsync(new VmRef { Name = "no-such-vm" }),
            async () => await _client.Vms.PauseAsync(new VmRef { Name = "no-such-vm" }),
            async () => await _client.Vms.DeleteAsync(new VmRef { Name = "no-such-vm" }),
            async () => await _client.Vms.ShutdownAsync(new ShutdownVmRequest { Name = "no-such-vm" }),
        };
        foreach (var call in calls)
        {
            var e = await Assert.ThrowsAsync<RpcException>(call);
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
            Assert.Contains("no VM named 'no-such-vm'", e.Status.Detail, StringComparison.Ordinal);
        }
        var watch = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = _client.Vms.Watch(new WatchVmsRequest { Name = "no-such-vm" });
            await call.ResponseStream.MoveNext(CancellationToken.None);
        });
        Assert.Equal(StatusCode.NotFound, watch.StatusCode);
        var console = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = _client.Vms.Console();
            await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { Name = "no-such-vm" } });
            await call.ResponseStream.MoveNext(CancellationToken.None);
        });
        Assert.Equal(StatusCode.NotFound, console.StatusCode);
    }

    [Fact]
    public async Task A_duplicate_define_is_already_exists_and_an_update_with_the_same_spec_is_idempotent()
    {
        var spec = TestGuest.Spec("dup");
        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = spec });

        var e = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.DefineAsync(new DefineVmRequest { Spec = spec }));
        var again = await _client.Vms.DefineAsync(new DefineVmRequest { Spec = spec, AllowUpdate = true });
        var changed = TestGuest.Spec("dup", s => s.Memory.SizeBytes = 128L << 20);
        var updated = await _client.Vms.DefineAsync(new DefineVmRequest { Spec = changed, AllowUpdate = true });

        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Contains("allow_update", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(VmState.Stopped, again.Status.State);
        Assert.Equal(128L << 20, updated.Spec.Memory.SizeBytes);
        Assert.Equal(128L << 20, (await _client.Vms.GetAsync(new VmRef { Name = "dup" })).Spec.Memory.SizeBytes);
        await _client.Vms.DeleteAsync(new VmRef { Name = "dup" });
    }

    [Fact]
    public async Task Malformed_specs_are_invalid_argument_naming_every_field()
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.DefineAsync(new DefineVmRequest
        {
            Spec = TestGuest.Spec("Bad_Name", s =>
            {
                s.Cpu = new CpuSpec { Sockets = -1, SharesLevel = SharesLevel.Custom, Shares = 0 };
            }),
        }));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("spec.cpu.shares", e.Status.Detail, StringComparison.Ordinal);

        var name = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("Bad_Name") }));
        Assert.Equal(StatusCode.InvalidArgument, name.StatusCode);
        Assert.Contains("name 'Bad_Name'", name.Status.Detail, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.DefineAsync(new DefineVmRequest()));
        Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
    }

    [Fact]
    public async Task Specs_the_host_cannot_satisfy_are_failed_precondition()
    {
        var info = await _client.Host.GetInfoAsync(new GetHostInfoRequest());
        var cases = new (VmSpec Spec, string Expected)[]
        {
            (TestGuest.Spec("too-big", s => s.Memory.SizeBytes = info.Capacity.MemoryBytes * 2), "more than this host has"),
            (TestGuest.Spec("reserves-too-much", s => s.Memory.ReservationBytes = info.Allocatable.MemoryBytes + (1L << 30)), "can never be reserved here"),
            (TestGuest.Spec("no-datastore", s => s.Disks.Add(new DiskSpec { Name = "root", Datastore = "ds-nowhere", Disk = "root" })), "datastore 'ds-nowhere' is not mounted"),
            (TestGuest.Spec("no-portgroup", s => s.Nics.Add(new NicSpec { Name = "eth0", PortGroup = "pg-nowhere", Mac = "52:54:00:00:00:01" })), "port group 'pg-nowhere' is not realized"),
        };
        foreach (var (spec, expected) in cases)
        {
            var e = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.DefineAsync(new DefineVmRequest { Spec = spec }));
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
            Assert.Contains(expected, e.Status.Detail, StringComparison.Ordinal);
        }
        var list = await _client.Vms.ListAsync(new ListVmsRequest());
        Assert.DoesNotContain(list.Vms, v => v.Spec.Name is "too-big" or "reserves-too-much" or "no-datastore" or "no-portgroup");
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("/proc/self/environ")]
    [InlineData("relative/vmlinux")]
    public async Task Boot_files_outside_the_image_directories_are_refused(string kernel)
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("escape", s => s.Boot.Kernel = kernel) }));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains($"spec.boot.kernel '{kernel}'", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dot_dot_and_symlinks_out_of_an_image_directory_are_judged_by_where_they_point()
    {
        var traversal = Path.Combine(TestGuest.Directory, "..", "..", "..", "..", "..", "..", "..", "etc", "passwd");
        var e1 = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("escape-dots", s => s.Boot.Initrd = traversal) }));
        Assert.Equal(StatusCode.FailedPrecondition, e1.StatusCode);
        Assert.Contains("outside the image directories", e1.Status.Detail, StringComparison.Ordinal);

        // A symlink inside an allowed directory that points out of it.
        var images = Path.Combine(fixture.Host.Root, "images");
        Directory.CreateDirectory(images);
        var link = Path.Combine(images, "vmlinux");
        File.CreateSymbolicLink(link, "/etc/shadow");
        await using var daemon = await fixture.Host.StartDaemonAsync("--image-dirs", images);
        using var client = fixture.Host.Connect(daemon);
        var e2 = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("escape-link", s => { s.Boot.Kernel = link; s.Boot.Initrd = ""; }) }));
        Assert.Equal(StatusCode.FailedPrecondition, e2.StatusCode);
        Assert.Contains("outside the image directories", e2.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Power_operations_on_a_stopped_vm_say_what_state_it_is_in()
    {
        await _client.Vms.DefineAsync(new DefineVmRequest { Spec = TestGuest.Spec("idle") });

        var pause = await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.PauseAsync(new VmRef { Name = "idle" }));
        var console = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = _client.Vms.Console();
            await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { Name = "idle" } });
            await call.ResponseStream.MoveNext(CancellationToken.None);
        });
        var stop = await _client.Vms.StopAsync(new VmRef { Name = "idle" }); // already off: nothing to do

        Assert.Equal(StatusCode.FailedPrecondition, pause.StatusCode);
        Assert.Contains("is Stopped", pause.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.FailedPrecondition, console.StatusCode);
        Assert.Contains("start it to use its console", console.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(VmState.Stopped, stop.Status.State);
        await _client.Vms.DeleteAsync(new VmRef { Name = "idle" });
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await _client.Vms.GetAsync(new VmRef { Name = "idle" }))).StatusCode);
    }

    [Fact]
    public async Task Migration_answers_unimplemented_naming_its_issue()
    {
        var mig = await Assert.ThrowsAsync<RpcException>(async () => await _client.Migrations.PrepareIncomingAsync(new PrepareIncomingRequest { MigrationId = "m1" }));

        Assert.Equal(StatusCode.Unimplemented, mig.StatusCode);
        Assert.Contains("issue 9", mig.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Datastore_devices_outside_dev_and_the_datastore_directories_are_refused()
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.Datastores.MountAsync(new MountDatastoreRequest { Name = "ds1", DevicePath = "/etc/passwd", FormatIfBlank = true }));
        var unknown = await Assert.ThrowsAsync<RpcException>(async () => await _client.Datastores.GetAsync(new DatastoreRef { Name = "ds-nowhere" }));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("outside the datastore directories", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }
}
