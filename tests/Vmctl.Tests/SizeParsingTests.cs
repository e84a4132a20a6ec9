using Vmk.Vmctl.Commands;
using Vmk.Vmkernel;

namespace Vmk.Vmctl.Tests;

public class SizeParsingTests
{
    [Theory]
    [InlineData("256M", 256L << 20)]
    [InlineData("1G", 1L << 30)]
    [InlineData("512", 512L << 20)]
    [InlineData("2048k", 2048L << 10)]
    public void Sizes_read_as_people_write_them(string text, long bytes) =>
        Assert.Equal(bytes, VmCommands.ParseSize(text, "--memory"));

    [Theory]
    [InlineData("")]
    [InlineData("1.5G")]
    [InlineData("-1G")]
    [InlineData("12Q")]
    public void Nonsense_sizes_are_refused_with_the_option_named(string text)
    {
        var e = Assert.Throws<VmkernelException>(() => VmCommands.ParseSize(text, "--memory"));
        Assert.Contains("--memory", e.Message, StringComparison.Ordinal);
    }
}
