using System.Security.Cryptography;
using System.Text;

namespace Vmk.Vmkernel.Network;

/// <summary>
/// Kernel names for what a port group creates. Interface names are limited to 15 characters and port group and
/// VM names are not, so names are a short prefix plus a hash of what they stand for: stable across restarts and
/// hosts, and recorded in the port group's state file so an operator can map them back.
/// </summary>
public static class DeviceNames
{
    public const int MaxInterfaceName = 15;

    public static string Bridge(string portGroup) => "vmkb" + Hash(portGroup);

    public static string Vxlan(string portGroup) => "vmkx" + Hash(portGroup);

    public static string Vlan(string portGroup) => "vmkv" + Hash(portGroup);

    public static string Tap(string vm, string nic) => "vmkt" + Hash(vm + "/" + nic);

    /// <summary>The nftables table (bridge family) holding the port group's policy.</summary>
    public static string NftTable(string portGroup) => "vmk_" + Hash(portGroup);

    /// <summary>The VXLAN network identifier of a port group that names none: the same on every host, 1 to 16777215.</summary>
    public static int Vni(string portGroup)
    {
        var h = SHA256.HashData(Encoding.UTF8.GetBytes("vni/" + portGroup));
        return 1 + (((h[0] << 16) | (h[1] << 8) | h[2]) % 16777215);
    }

    /// <summary>A locally administered unicast MAC derived from the VM and NIC names (QEMU's 52:54:00 prefix).</summary>
    public static string Mac(string vm, string nic)
    {
        var h = SHA256.HashData(Encoding.UTF8.GetBytes("mac/" + vm + "/" + nic));
        return $"52:54:00:{h[0]:x2}:{h[1]:x2}:{h[2]:x2}";
    }

    private static string Hash(string key) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..8];
}
