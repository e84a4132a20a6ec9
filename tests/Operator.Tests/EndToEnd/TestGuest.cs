namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>The test guest that scripts/build-guest.sh builds (kernel and initrd; its init prints VMK-GUEST-UP on the console).</summary>
internal static class TestGuest
{
    public static string Directory =>
        Environment.GetEnvironmentVariable("VMK_GUEST_DIR")
        ?? Path.Combine(Environment.GetEnvironmentVariable("VMK_CACHE_DIR") ?? "/var/cache/vmkernel", "guest", "current");

    public static string Kernel => Require("vmlinux");

    public static string Initrd => Require("initrd.gz");

    private static string Require(string file)
    {
        var path = Path.Combine(Directory, file);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"test guest file {path} is missing: run scripts/build-guest.sh (the README's test command does)");
        }
        return path;
    }
}
