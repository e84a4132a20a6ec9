using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Configuration;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// The rule that keeps the API from reaching host files: a path a caller names is resolved (symlinks and "..")
/// and must then lie inside one of the directories the daemon was configured with: kernels and initrds in an
/// image directory, datastore backing files in a datastore directory (or be a block device under /dev).
/// Resolving first matters: /var/lib/vmkernel/images/../../../etc/shadow or a symlink planted in an image
/// directory is judged by where it really points.
/// </summary>
public sealed partial class PathPolicy(IOptions<DaemonOptions> options)
{
    /// <summary>The resolved path of a boot file, or an error message naming the field and the allowed directories.</summary>
    public bool TryResolveImage(string field, string path, out string resolved, out string error) =>
        TryResolveInside(field, path, options.Value.ImageDirectoryList, "image directories (--image-dirs)", out resolved, out error);

    /// <summary>The resolved path of a datastore device: a block device under /dev, or a file in a datastore directory.</summary>
    public bool TryResolveDatastoreDevice(string path, out string resolved, out string error)
    {
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathRooted(path))
        {
            resolved = "";
            error = $"device_path '{path}': give an absolute path (a block device under /dev or a file in {Describe(options.Value.DatastoreDirectoryList)})";
            return false;
        }
        var real = RealPath(path);
        if (real is not null && real.StartsWith("/dev/", StringComparison.Ordinal) && IsBlockDevice(real))
        {
            resolved = real;
            error = "";
            return true;
        }
        return TryResolveInside("device_path", path, options.Value.DatastoreDirectoryList, "datastore directories (--datastore-dirs)", out resolved, out error);
    }

    /// <summary>
    /// Creates a missing datastore backing file (sparse, <paramref name="size"/> bytes) when its directory lies in a
    /// datastore directory; an existing file or a /dev path is left alone (true). The operator asks for this for
    /// file-backed Datastores, as it cannot reach the host's filesystem itself.
    /// </summary>
    public bool TryCreateDatastoreFile(string path, long size, out string error)
    {
        error = "";
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathRooted(path) || path.StartsWith("/dev/", StringComparison.Ordinal) || File.Exists(path))
        {
            return true;
        }
        var directory = Path.GetDirectoryName(path);
        var realDirectory = directory is null ? null : RealPath(directory);
        var allowed = options.Value.DatastoreDirectoryList.Select(RealPath).Where(d => d is not null).ToList();
        if (realDirectory is null || !allowed.Any(d => realDirectory == d || realDirectory.StartsWith(d!.TrimEnd('/') + "/", StringComparison.Ordinal)))
        {
            error = $"device_path '{path}' does not exist and its directory is not inside the datastore directories (--datastore-dirs: {Describe(options.Value.DatastoreDirectoryList)}); create the file or start vmkerneld with that directory allowed";
            return false;
        }
        try
        {
            using var file = new FileStream(Path.Combine(realDirectory, Path.GetFileName(path)), FileMode.CreateNew, FileAccess.Write);
            file.SetLength(size);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another mount request created it first.
        }
        return true;
    }

    private static bool TryResolveInside(string field, string path, IReadOnlyList<string> allowed, string what, out string resolved, out string error)
    {
        resolved = "";
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathRooted(path))
        {
            error = $"{field} '{path}': give an absolute path inside the {what}: {Describe(allowed)}";
            return false;
        }
        var real = RealPath(path);
        if (real is null)
        {
            error = $"{field} '{path}' does not exist on this host";
            return false;
        }
        foreach (var dir in allowed)
        {
            var realDir = RealPath(dir);
            if (realDir is not null && real.StartsWith(realDir.TrimEnd('/') + "/", StringComparison.Ordinal))
            {
                if (!File.Exists(real))
                {
                    error = $"{field} '{path}' is not a regular file";
                    return false;
                }
                resolved = real;
                error = "";
                return true;
            }
        }
        error = $"{field} '{path}' is outside the {what} of this host ({Describe(allowed)}); copy the file there or start vmkerneld with that directory allowed";
        return false;
    }

    private static string Describe(IReadOnlyList<string> dirs) => dirs.Count == 0 ? "none configured" : string.Join(", ", dirs);

    // Every block device the kernel knows has an entry in /sys/class/block named like its /dev node.
    private static bool IsBlockDevice(string realPath) =>
        Directory.Exists(Path.Combine("/sys/class/block", Path.GetFileName(realPath)));

    /// <summary>realpath(3): the canonical absolute path, or null when the path (or a component) does not exist.</summary>
    internal static string? RealPath(string path)
    {
        var p = NativeRealPath(path, IntPtr.Zero);
        if (p == IntPtr.Zero)
        {
            return null;
        }
        try
        {
            return Marshal.PtrToStringUTF8(p);
        }
        finally
        {
            Free(p);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr NativeRealPath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(IntPtr p);
}
