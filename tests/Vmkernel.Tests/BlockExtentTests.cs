using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Tests;

public class BlockExtentTests
{
    [Fact]
    public void Extents_with_the_same_fields_are_equal()
    {
        Assert.Equal(new BlockExtent(0, 4096, true, true), new BlockExtent(0, 4096, true, true));
        Assert.NotEqual(new BlockExtent(0, 4096, true, true), new BlockExtent(0, 4096, false, false));
    }
}
