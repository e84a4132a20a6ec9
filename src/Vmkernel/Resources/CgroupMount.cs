namespace Vmk.Vmkernel.Resources;

/// <summary>A cgroup or cgroup2 filesystem mount as /proc/self/mountinfo lists it.</summary>
internal sealed record CgroupMount(string MountPoint, string FileSystemType, IReadOnlySet<string> SuperOptions)
{
    /// <summary>
    /// Parses mountinfo lines ("36 35 0:30 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu"),
    /// keeping cgroup and cgroup2 mounts. Mount points escape space, tab, newline and backslash as octal.
    /// </summary>
    public static IReadOnlyList<CgroupMount> Parse(IEnumerable<string> mountInfoLines)
    {
        var mounts = new List<CgroupMount>();
        foreach (var line in mountInfoLines)
        {
            var fields = line.Split(' ');
            var separator = Array.IndexOf(fields, "-");
            if (separator < 5 || fields.Length < separator + 4)
            {
                continue;
            }

            var type = fields[separator + 1];
            if (type is not ("cgroup" or "cgroup2"))
            {
                continue;
            }

            var options = fields[separator + 3].Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            mounts.Add(new CgroupMount(Unescape(fields[4]), type, options));
        }

        return mounts;
    }

    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new System.Text.StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                text.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }

    private static bool IsOctal(string field, int start) =>
        start + 3 <= field.Length && field.AsSpan(start, 3).IndexOfAnyExceptInRange('0', '7') < 0;
}
