namespace Vmk.Vmkernel.Resources;

/// <summary>
/// The id of a VM's cgroup: the VM's name and this host's, so that two VMkernels on one machine (the standalone
/// mode's hosts, the tests' two-host set-ups) never share one cgroup while a VM migrates between them: the source
/// removing its cgroup would otherwise wait on the target's QEMU in it, and limits would count both QEMUs.
/// </summary>
public static class VmCgroupNames
{
    public static string For(string vmName, string? hostName)
    {
        if (string.IsNullOrEmpty(hostName))
        {
            return vmName;
        }
        var host = new string(hostName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-').ToArray());
        var id = $"{vmName}.{host}";
        return id.Length <= 200 ? id : id[..200];
    }
}
