using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Resources;

/// <summary>
/// Picks the cgroup layout this host can actually use. Mounted is not enough: on a hybrid host the v2
/// tree is mounted but owns no controllers (they are bound to the v1 hierarchies), so each candidate is
/// checked for cpu and memory and then tried by creating the VMkernel's parent cgroup. v2 is preferred
/// when it works; v1 next; with neither, VMs run without cgroups and any limit is refused with the reason.
/// </summary>
public static class CgroupManagerFactory
{
    public const string DefaultParentName = "vmkernel";

    public static ICgroupManager Detect(ILogger? logger = null, string root = "/sys/fs/cgroup") =>
        Detect(logger, root, DefaultParentName, "/proc/self/mountinfo");

    internal static CgroupManager Detect(ILogger? logger, string root, string parentName, string mountInfoPath)
    {
        var reasons = new List<string>();
        IReadOnlyList<CgroupMount> mounts;
        try
        {
            mounts = CgroupMount.Parse(File.ReadLines(mountInfoPath))
                .Where(mount => IsUnder(mount.MountPoint, root))
                .ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            mounts = [];
            reasons.Add($"cannot read {mountInfoPath}: {e.Message}");
        }

        CgroupDriver? driver = (CgroupDriver?)TryV2(mounts, root, parentName, reasons) ?? TryV1(mounts, root, parentName, reasons);
        if (driver is null)
        {
            driver = new UnavailableCgroupDriver(string.Join("; ", reasons), parentName);
            logger?.LogWarning("No usable cgroups: {Reasons}; VMs with limits or reservations cannot start", string.Join("; ", reasons));
        }
        else
        {
            logger?.LogInformation("VM cgroups: {Cgroups} under '{Parent}'", driver.Describe(), parentName);
        }

        return new CgroupManager(driver, logger);
    }

    private static CgroupV2Driver? TryV2(IReadOnlyList<CgroupMount> mounts, string root, string parentName, List<string> reasons)
    {
        var unified = mounts.Where(mount => mount.FileSystemType == "cgroup2").ToList();
        if (unified.Count == 0)
        {
            reasons.Add($"no cgroup v2 mounted under {root}");
            return null;
        }

        foreach (var mount in unified)
        {
            string controllers;
            try
            {
                controllers = File.ReadAllText(Path.Combine(mount.MountPoint, "cgroup.controllers"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                reasons.Add($"cgroup v2 at {mount.MountPoint}: {e.Message}");
                continue;
            }

            var available = controllers.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            var missing = new[] { "cpu", "memory" }.Where(c => !available.Contains(c)).ToList();
            if (missing.Count > 0)
            {
                reasons.Add($"cgroup v2 at {mount.MountPoint} lacks the {string.Join(" and ", missing)} controller{(missing.Count > 1 ? "s" : "")} (bound to cgroup v1 on this host?)");
                continue;
            }

            var driver = new CgroupV2Driver(mount.MountPoint, parentName);
            if (TryPrepare(driver, reasons))
            {
                return driver;
            }
        }

        return null;
    }

    private static CgroupV1Driver? TryV1(IReadOnlyList<CgroupMount> mounts, string root, string parentName, List<string> reasons)
    {
        var mountPoints = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var controller in CgroupV1Driver.RequiredControllers)
        {
            var mount = mounts.FirstOrDefault(m => m.FileSystemType == "cgroup" && m.SuperOptions.Contains(controller));
            if (mount is null)
            {
                reasons.Add($"cgroup v1 controller '{controller}' is not mounted under {root}");
                return null;
            }

            mountPoints[controller] = mount.MountPoint;
        }

        var driver = new CgroupV1Driver(mountPoints, parentName);
        return TryPrepare(driver, reasons) ? driver : null;
    }

    private static bool TryPrepare(CgroupDriver driver, List<string> reasons)
    {
        try
        {
            driver.EnsureParent();
            return true;
        }
        catch (CgroupException e)
        {
            reasons.Add($"{driver.Describe()} is not usable: {e.Message}");
            return false;
        }
    }

    private static bool IsUnder(string path, string root)
    {
        var normalizedRoot = root.TrimEnd('/');
        return path == normalizedRoot || path.StartsWith(normalizedRoot + "/", StringComparison.Ordinal);
    }
}
