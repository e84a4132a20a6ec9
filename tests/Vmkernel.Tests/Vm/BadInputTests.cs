using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Vm;

/// <summary>Every mistake a user can make gets one message naming it and what to do, and nothing is left running.</summary>
[Collection("qemu")]
public sealed class BadInputTests : IAsyncLifetime
{
    private readonly VmHostFixture _fixture = new();
    private VmkernelHost _host = null!;

    public async Task InitializeAsync() => _host = await _fixture.OpenAsync();

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _fixture.DisposeAsync();
    }

    private async Task<VmkernelException> RefusedAsync(VmSpec spec)
    {
        var e = await Assert.ThrowsAsync<VmkernelException>(() => _host.DefineAsync(spec));
        Assert.Null(_host.Find(spec.Name));
        Assert.Empty(_fixture.QemuPids());
        return e;
    }

    [Fact]
    public async Task A_missing_kernel_file_is_named_with_how_to_get_one()
    {
        var e = await RefusedAsync(TestGuest.Spec("nokernel", s => s with { Boot = s.Boot with { Kernel = "/nonexistent/vmlinux" } }));

        Assert.Contains("boot.kernel: file '/nonexistent/vmlinux' does not exist", e.Message, StringComparison.Ordinal);
        Assert.Contains("build-guest.sh", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Zero_memory_is_refused()
    {
        var e = await RefusedAsync(TestGuest.Spec("nomem", s => s with { MemoryBytes = 0 }));

        Assert.Contains("memory: 0 bytes is too little", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task More_memory_than_the_host_has_is_refused_with_both_figures()
    {
        var e = await RefusedAsync(TestGuest.Spec("bigmem", s => s with { MemoryBytes = _host.HostMemoryBytes * 2 }));

        Assert.Contains($"more than this host has ({_host.HostMemoryBytes >> 20} MiB)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_machine_type_is_refused()
    {
        var e = await RefusedAsync(TestGuest.Spec("badmachine", s => s with { Machine = (MachineType)42 }));

        Assert.Contains("unknown machine type; use microvm or q35", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_name_that_is_not_a_dns_label_is_refused()
    {
        var e = await RefusedAsync(TestGuest.Spec("Bad_Name"));

        Assert.Contains("name 'Bad_Name'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_not_installed_says_which_package_to_install()
    {
        var e = await Assert.ThrowsAsync<VmkernelException>(() => _fixture.OpenAsync(o => o with { QemuBinary = "qemu-system-does-not-exist" }));

        Assert.Contains("install the Debian package qemu-system-x86", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_state_directory_that_cannot_be_written_is_named()
    {
        var file = Path.Combine(_fixture.StateDirectory, "a-file");
        await File.WriteAllTextAsync(file, "");

        var e = await Assert.ThrowsAsync<VmkernelException>(() => _fixture.OpenAsync(o => o with { StateDirectory = Path.Combine(file, "state") }));

        Assert.Contains($"state directory '{file}/state' is not writable", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_refusing_the_command_line_fails_the_start_with_qemus_own_words()
    {
        // A kernel file that is not a kernel passes validation; QEMU itself refuses it at start.
        var bogus = Path.Combine(_fixture.StateDirectory, "not-a-kernel");
        await File.WriteAllTextAsync(bogus, "this is not a kernel");
        var vm = await _host.DefineAsync(TestGuest.Spec("bogus", s => s with { Boot = s.Boot with { Kernel = bogus } }));

        var e = await Assert.ThrowsAsync<VmkernelException>(() => vm.StartAsync());

        Assert.Contains("QEMU exited while starting VM 'bogus'", e.Message, StringComparison.Ordinal);
        Assert.Equal(VmState.Failed, vm.State);
        Assert.Empty(_fixture.QemuPids());
    }
}
