using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>The test guest that scripts/build-guest.sh builds, as an API spec.</summary>
internal static class TestGuest
{
    public static string Directory =>
        Environment.GetEnvironmentVariable("VMK_GUEST_DIR")
        ?? Path.Combine(Environment.GetEnvironmentVariable("VMK_CACHE_DIR") ?? "/var/cache/vmkernel", "guest", "current");

    public static string Kernel => Require("vmlinux");

    public static string Initrd => Require("initrd.gz");

    public static VmSpec Spec(string name, Action<VmSpec>? change = null)
    {
        var spec = new VmSpec
        {
            Name = name,
            Memory = new MemorySpec { SizeBytes = 256L << 20 },
            Boot = new BootSpec { Kernel = Kernel, Initrd = Initrd, Cmdline = "console=ttyS0 tsc=reliable quiet" },
            Owner = new VmOwner { Namespace = "tests", Name = name },
        };
        change?.Invoke(spec);
        return spec;
    }

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
