namespace Vmk.Vmctl.Standalone;

/// <summary>
/// Finds vmkerneld and vm-operator: an environment variable naming the program (VMK_VMKERNELD, VMK_OPERATOR) wins;
/// then the published binary next to vmctl's own (scripts/build-vmctl.sh publishes all three into one directory);
/// then the .dll next to vmctl (a test's or a build's output directory) run by <c>dotnet</c>; then the repository's
/// build output of the project, when vmctl runs from inside the repository.
/// </summary>
internal static class ExecutableLocator
{
    public static ChildCommand? Find(string assemblyName, string projectDirectory, string environmentVariable, out string searched)
    {
        var places = new List<string>();
        var fromEnv = Environment.GetEnvironmentVariable(environmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            places.Add($"${environmentVariable}={fromEnv}");
            searched = string.Join(", ", places);
            return File.Exists(fromEnv) ? FromPath(Path.GetFullPath(fromEnv)) : null;
        }
        var here = AppContext.BaseDirectory;
        var native = Path.Combine(here, assemblyName);
        places.Add(native);
        if (File.Exists(native) && File.Exists(native + ".dll"))
        {
            searched = string.Join(", ", places);
            return new ChildCommand(native, []);
        }
        var dll = Path.Combine(here, assemblyName + ".dll");
        places.Add(dll);
        if (File.Exists(dll))
        {
            searched = string.Join(", ", places);
            return FromPath(dll);
        }
        for (var dir = new DirectoryInfo(here); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "Operator.sln")))
            {
                continue;
            }
            var bin = Path.Combine(dir.FullName, "src", projectDirectory, "bin");
            places.Add(Path.Combine(bin, "*", "*", assemblyName + ".dll"));
            var newest = Directory.Exists(bin)
                ? Directory.EnumerateFiles(bin, assemblyName + ".dll", SearchOption.AllDirectories)
                    .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}publish{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}ref{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                    .OrderByDescending(File.GetLastWriteTimeUtc)
                    .FirstOrDefault()
                : null;
            searched = string.Join(", ", places);
            return newest is null ? null : FromPath(newest);
        }
        searched = string.Join(", ", places);
        return null;
    }

    private static ChildCommand FromPath(string path) =>
        path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? new ChildCommand(DotnetHost(), [path])
            : new ChildCommand(path, []);

    private static string DotnetHost()
    {
        var fromHost = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromHost) && File.Exists(fromHost))
        {
            return fromHost;
        }
        // vmctl itself runs on a dotnet host; its path is the one to reuse (no PATH lookup under sudo).
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }
        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet")))
        {
            return Path.Combine(root, "dotnet");
        }
        return "dotnet";
    }
}
