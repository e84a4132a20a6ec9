using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Vmk.Vmkernel.Interop;

namespace Vmk.Vmkernel.Resources;

/// <summary>Reading and writing cgroupfs control files, with errors that name the file.</summary>
internal static class CgroupFs
{
    /// <summary>
    /// One write(2) of the whole value, on the existing file: the kernel parses each write on its own,
    /// and control files cannot be created.
    /// </summary>
    public static void Write(string path, string value)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Write);
            RandomAccess.Write(handle, System.Text.Encoding.ASCII.GetBytes(value), 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CgroupException($"cannot write '{value}' to {path}: {e.Message}", e);
        }
    }

    public static string Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CgroupException($"cannot read {path}: {e.Message}", e);
        }
    }

    public static long ReadNumber(string path)
    {
        var text = Read(path).Trim();
        if (text == "max")
        {
            return long.MaxValue;
        }

        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new CgroupException($"{path} holds '{text}', not a number");
    }

    /// <summary>Flat-keyed files such as cpu.stat ("nr_periods 12").</summary>
    public static Dictionary<string, long> ReadKeyed(string path)
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in Read(path).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 2, StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                values[parts[0]] = value;
            }
        }

        return values;
    }

    public static IReadOnlyList<int> ReadPids(string procsFile)
    {
        if (!File.Exists(procsFile))
        {
            return [];
        }

        return Read(procsFile)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => int.Parse(line, NumberStyles.Integer, CultureInfo.InvariantCulture))
            .ToList();
    }

    /// <summary>mkdir that is fine with an existing directory; returns whether it made one.</summary>
    public static bool MakeDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            return false;
        }

        try
        {
            Directory.CreateDirectory(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CgroupException($"cannot create cgroup {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Removes a cgroup directory. True when it is gone (or never was). A cgroup whose last process
    /// has just exited can still answer EBUSY for a moment while the kernel finishes tearing the task
    /// down, so EBUSY with an empty cgroup.procs is retried until <paramref name="settleTimeout"/>.
    /// </summary>
    public static bool RemoveDirectory(string path, TimeSpan settleTimeout, out string? failure)
    {
        failure = null;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (Libc.Rmdir(path) == 0)
            {
                return true;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.ENOENT)
            {
                return true;
            }

            if (errno != Libc.EBUSY)
            {
                failure = $"cannot remove cgroup {path} ({Libc.Describe(errno)})";
                return false;
            }

            var pids = ReadPids(Path.Combine(path, "cgroup.procs"));
            if (pids.Count > 0)
            {
                failure = $"cgroup {path} still has processes {string.Join(", ", pids)}: stop them first";
                return false;
            }

            if (clock.Elapsed > settleTimeout)
            {
                failure = $"cgroup {path} stays busy although it has no processes";
                return false;
            }

            Thread.Sleep(10); // polling a kernel state that has no notification; bounded by settleTimeout
        }
    }
}
