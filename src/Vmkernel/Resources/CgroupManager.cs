using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Resources;

/// <summary>The <see cref="ICgroupManager"/> over whichever <see cref="CgroupDriver"/> the host supports.</summary>
internal sealed partial class CgroupManager(CgroupDriver driver, ILogger? logger) : ICgroupManager
{
    internal CgroupDriver Driver { get; } = driver;

    public string Describe() => Driver.Describe();

    public VmCgroup Create(string vmId, VmResources resources)
    {
        ValidateVmId(vmId);
        ArgumentNullException.ThrowIfNull(resources);
        resources.Validate();
        Driver.EnsureParent();
        var created = new List<string>();
        foreach (var directory in Driver.Directories(vmId))
        {
            if (CgroupFs.MakeDirectory(directory))
            {
                created.Add(directory);
            }
        }

        var cgroup = new VmCgroup(vmId, Driver, logger);
        try
        {
            Driver.Apply(vmId, resources);
        }
        catch
        {
            // A cgroup made by this call that could not take its settings is removed again, so no
            // half-configured cgroup is left for a later re-adoption to trust.
            foreach (var directory in created)
            {
                CgroupFs.RemoveDirectory(directory, TimeSpan.Zero, out _);
            }

            throw;
        }

        logger?.LogInformation("Cgroup of VM {VmId} ready ({Cgroups}): {Resources}", vmId, Driver.Describe(), resources);
        return cgroup;
    }

    public VmCgroup? Open(string vmId)
    {
        ValidateVmId(vmId);
        var directories = Driver.Directories(vmId);
        if (directories.Count == 0 || !directories.All(Directory.Exists))
        {
            return null;
        }

        return new VmCgroup(vmId, Driver, logger);
    }

    /// <summary>Removes the parent cgroup(s) if no VM is left in them; for tests that use their own parent.</summary>
    internal bool TryDeleteParent()
    {
        var removed = true;
        foreach (var directory in Driver.ParentDirectories())
        {
            removed &= CgroupFs.RemoveDirectory(directory, TimeSpan.FromSeconds(2), out _);
        }

        return removed;
    }

    private static void ValidateVmId(string vmId)
    {
        if (string.IsNullOrEmpty(vmId) || vmId.Length > 200 || !SafeName().IsMatch(vmId))
        {
            throw new ArgumentException(
                $"VM id '{vmId}' cannot name a cgroup: use 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit", nameof(vmId));
        }
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex SafeName();
}
