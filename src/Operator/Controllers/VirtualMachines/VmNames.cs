using System.Security.Cryptography;
using System.Text;

namespace Vmk.Operator.Controllers.VirtualMachines;

/// <summary>
/// Names derived from a VirtualMachine's namespace and name, so that any replica, after any restart, computes
/// the same ones: never a second VM or a second disk for the same object.
/// </summary>
public static class VmNames
{
    /// <summary>
    /// The VM's name on its daemon: lowercase letters, digits and '-', at most 63 characters (the daemon's rule),
    /// readable (namespace-name) plus a short hash of namespace/name, since "a-b/c" and "a/b-c" read alike.
    /// </summary>
    public static string DaemonName(string ns, string name)
    {
        var readable = new StringBuilder();
        foreach (var c in $"{ns}-{name}".ToLowerInvariant())
        {
            readable.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') ? c : '-');
        }
        var prefix = readable.ToString().Trim('-');
        if (prefix.Length > 56)
        {
            prefix = prefix[..56].TrimEnd('-');
        }
        return $"{prefix}-{Hash($"{ns}/{name}")[..6]}";
    }

    /// <summary>The virtual disk's name on the datastore: namespace.vm.disk (VMFS names allow dots, at most 128 bytes).</summary>
    public static string DiskName(string ns, string vm, string disk)
    {
        var full = $"{ns}.{vm}.{disk}";
        return Encoding.UTF8.GetByteCount(full) <= 128 ? full : $"{full[..100]}.{Hash(full)[..16]}";
    }

    /// <summary>A stable locally administered MAC for a NIC without spec.nics[].mac (QEMU's 52:54:00 prefix).</summary>
    public static string Mac(string ns, string vm, string nic)
    {
        var h = Convert.FromHexString(Hash($"{ns}/{vm}/{nic}")[..6]);
        return $"52:54:00:{h[0]:x2}:{h[1]:x2}:{h[2]:x2}";
    }

    private static string Hash(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));
}
