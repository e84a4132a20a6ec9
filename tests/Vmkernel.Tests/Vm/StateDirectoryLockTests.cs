namespace Vmk.Vmkernel.Tests.Vm;

/// <summary>
/// One VMkernel per state directory: a second one (a `vmctl vm list` pointed at a running vmkerneld's directory)
/// is refused with the holder named, instead of taking over the first one's NBD socket and VMs.
/// </summary>
public sealed class StateDirectoryLockTests
{
    [Fact]
    public async Task A_second_vmkernel_on_the_same_state_directory_is_refused_naming_the_holder()
    {
        await using var fixture = new VmHostFixture();
        var first = await fixture.OpenAsync();
        var nbdSocket = Path.Combine(fixture.StateDirectory, "nbd.sock");
        var socketBefore = File.GetLastWriteTimeUtc(nbdSocket);
        await using (first)
        {
            var refused = await Assert.ThrowsAsync<VmkernelException>(() => fixture.OpenAsync());
            Assert.Contains("in use by another VMkernel", refused.Message, StringComparison.Ordinal);
            Assert.Contains($"pid {Environment.ProcessId}", refused.Message, StringComparison.Ordinal);
            Assert.Equal(socketBefore, File.GetLastWriteTimeUtc(nbdSocket));
        }

        // Released with the first one: the directory can be opened again.
        await using var second = await fixture.OpenAsync();
        Assert.Empty(second.VirtualMachines);
    }
}
