namespace Vmk.ApiServer;

/// <summary>
/// Finds the project's crds/ directory: an explicit path wins; otherwise the copy built next to the binary
/// (<c>&lt;bin&gt;/crds</c>, which the ApiServer project places there); otherwise the repository's crds/ found by
/// walking up from the working directory to the directory holding Operator.sln.
/// </summary>
public static class CrdLocator
{
    public static string? Find(string? explicitPath = null)
    {
        if (!string.IsNullOrEmpty(explicitPath))
        {
            return Directory.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : null;
        }
        var beside = Path.Combine(AppContext.BaseDirectory, "crds");
        if (Directory.Exists(beside) && Directory.EnumerateFiles(beside, "*.yaml").Any())
        {
            return beside;
        }
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "crds");
            if (File.Exists(Path.Combine(dir.FullName, "Operator.sln")) && Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}
