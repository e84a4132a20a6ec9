namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>The vm-operator binary refuses what it cannot use with exit code 2 and a message naming the flag.</summary>
public sealed class ProgramTests
{
    [Theory]
    [InlineData("--lease-duration=forever", "--lease-duration")]
    [InlineData("--bogus", "unknown flag --bogus")]
    [InlineData("--kubeconfig=/nonexistent/kubeconfig", "--kubeconfig")]
    public async Task Bad_flags_exit_2_naming_the_flag(string arg, string expected)
    {
        await using var p = await ChildProcess.StartAsync("vm-operator.dll", [arg], readyPrefix: null);
        await p.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, p.ExitCode);
        Assert.Contains(expected, p.Output, StringComparison.Ordinal);
    }
}
