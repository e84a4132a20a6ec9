namespace Vmk.Vmctl;

/// <summary>Where scripts/build-guest.sh leaves the test guest, and how it is booted.</summary>
internal static class GuestImage
{
    public const string DefaultCmdline = "console=ttyS0 tsc=reliable quiet";

    public static string DefaultDirectory() =>
        Environment.GetEnvironmentVariable("VMK_GUEST_DIR")
        ?? Path.Combine(Environment.GetEnvironmentVariable("VMK_CACHE_DIR") ?? "/var/cache/vmkernel", "guest", "current");
}
