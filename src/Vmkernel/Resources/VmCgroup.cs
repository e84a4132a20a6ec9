using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Resources;

/// <summary>
/// One VM's cgroup. Its QEMU joins it before it runs a single guest instruction: the launcher writes
/// its own pid into every file of <see cref="ProcsFiles"/> (<c>sh -c 'echo $$ &gt; f1; ...; exec qemu ...'</c>),
/// so there is no window in which the VM runs outside its limits.
/// </summary>
public sealed class VmCgroup
{
    private static readonly TimeSpan DeleteSettleTimeout = TimeSpan.FromSeconds(2);

    private readonly CgroupDriver _driver;
    private readonly ILogger? _logger;

    internal VmCgroup(string vmId, CgroupDriver driver, ILogger? logger)
    {
        VmId = vmId;
        _driver = driver;
        _logger = logger;
        Directories = driver.Directories(vmId);
        ProcsFiles = driver.ProcsFiles(vmId);
    }

    public string VmId { get; }

    /// <summary>The cgroup directories (one for v2, one per hierarchy for v1; none without cgroups).</summary>
    public IReadOnlyList<string> Directories { get; }

    /// <summary>The cgroup.procs files a process must write its pid into to join this VM's cgroup.</summary>
    public IReadOnlyList<string> ProcsFiles { get; }

    /// <summary>Moves a running process (all its threads) into the VM's cgroup.</summary>
    public void AddProcess(int pid)
    {
        if (pid <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "a process id is positive");
        }

        foreach (var procs in ProcsFiles)
        {
            try
            {
                CgroupFs.Write(procs, pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (CgroupException e) when (!Directory.Exists($"/proc/{pid}"))
            {
                throw new CgroupException($"cannot add process {pid} to the cgroup of VM '{VmId}': process {pid} does not exist (it has exited)", e);
            }
        }
    }

    /// <summary>The processes in the VM's cgroup (QEMU, and anything it started).</summary>
    public IReadOnlyList<int> Processes() => ProcsFiles.Count == 0 ? [] : CgroupFs.ReadPids(ProcsFiles[0]);

    /// <summary>Applies new settings to the running VM.</summary>
    public void Update(VmResources resources)
    {
        ArgumentNullException.ThrowIfNull(resources);
        _driver.Apply(VmId, resources);
        _logger?.LogInformation("Cgroup of VM {VmId} updated: {Resources}", VmId, resources);
    }

    public CgroupUsage ReadUsage() => _driver.ReadUsage(VmId);

    /// <summary>
    /// Removes the cgroup once its processes are gone. Returns false (and logs why) while processes are
    /// still in it; an already removed cgroup is fine.
    /// </summary>
    public bool Delete()
    {
        var removed = true;
        foreach (var directory in Directories)
        {
            if (!CgroupFs.RemoveDirectory(directory, DeleteSettleTimeout, out var failure))
            {
                removed = false;
                _logger?.LogWarning("Cgroup of VM {VmId} not removed: {Failure}", VmId, failure);
            }
        }

        return removed;
    }
}
