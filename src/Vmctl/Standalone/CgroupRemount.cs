using System.Text;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// `ip netns exec` runs its command in a new mount namespace with a fresh /sys (one that shows the host's own
/// network devices, as the daemon's tap metrics need), and that hides the cgroup hierarchies mounted under
/// /sys/fs/cgroup. This builds the shell commands that mount the same hierarchies there again, read from vmctl's
/// own /proc/self/mountinfo: mounting a cgroup v1 controller set or cgroup2 a second time gives the same hierarchy,
/// so the daemon's VMs land in the machine's cgroups as they would outside a namespace.
/// </summary>
internal static class CgroupRemount
{
    public static string Script()
    {
        var script = new StringBuilder();
        foreach (var line in File.ReadAllLines("/proc/self/mountinfo"))
        {
            var dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0)
            {
                continue;
            }
            var before = line[..dash].Split(' ');
            var after = line[(dash + 3)..].Split(' ');
            if (before.Length < 5 || after.Length < 3)
            {
                continue;
            }
            var mountPoint = before[4];
            var type = after[0];
            if (mountPoint != "/sys/fs/cgroup" && !mountPoint.StartsWith("/sys/fs/cgroup/", StringComparison.Ordinal))
            {
                continue;
            }
            var options = string.Join(',', after[2].Split(',').Where(o => o is not ("rw" or "ro")));
            switch (type)
            {
                case "tmpfs" when mountPoint == "/sys/fs/cgroup":
                    script.Append("mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup && ");
                    break;
                case "cgroup":
                    script.Append($"mkdir -p '{mountPoint}' && mount -t cgroup -o '{options}' cgroup '{mountPoint}' && ");
                    break;
                case "cgroup2":
                    script.Append($"mkdir -p '{mountPoint}' && mount -t cgroup2 {(options.Length > 0 ? $"-o '{options}' " : "")}cgroup2 '{mountPoint}' && ");
                    break;
            }
        }
        return script.ToString();
    }
}
