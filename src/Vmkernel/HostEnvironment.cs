namespace Vmk.Vmkernel;

/// <summary>Facts about the host read from the usual places (PATH, /proc, /etc/passwd).</summary>
public static class HostEnvironment
{
    /// <summary>Absolute path of an executable given by name (searched on PATH) or path; null if there is none.</summary>
    public static string? ResolveExecutable(string nameOrPath)
    {
        if (nameOrPath.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(nameOrPath) ? Path.GetFullPath(nameOrPath) : null;
        }
        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, nameOrPath))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>MemTotal from /proc/meminfo, in bytes.</summary>
    public static long MemoryBytes()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var kib = long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                return kib * 1024;
            }
        }
        throw new VmkernelException("/proc/meminfo has no MemTotal line");
    }

    public static bool UserExists(string user) =>
        File.ReadLines("/etc/passwd").Any(l => l.StartsWith(user + ":", StringComparison.Ordinal));

    /// <summary>
    /// The TSC frequency in kHz, from the first "cpu MHz" of /proc/cpuinfo (on CPUs with a constant TSC, as every
    /// x86 host of the last decade, that is the TSC rate closely enough for a guest's clock); null if unknown.
    /// </summary>
    public static long? TscKhz()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("cpu MHz", StringComparison.Ordinal));
            if (line is not null && double.TryParse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(),
                    System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var mhz) && mhz > 0)
            {
                return (long)(mhz * 1000);
            }
        }
        catch (IOException)
        {
        }
        return null;
    }

    /// <summary>The group id of a group from /etc/group; null if there is none.</summary>
    public static int? GroupId(string group)
    {
        var line = File.ReadLines("/etc/group").FirstOrDefault(l => l.StartsWith(group + ":", StringComparison.Ordinal));
        return line is not null && int.TryParse(line.Split(':')[2], System.Globalization.CultureInfo.InvariantCulture, out var gid) ? gid : null;
    }
}
