using System.Text.RegularExpressions;

namespace Vmk.Vmkernel.Vm;

/// <summary>
/// Checks a <see cref="VmSpec"/> against the host before anything is started, so that bad input ends in
/// one message that names the field and what to do, and never in a half-started QEMU.
/// </summary>
public static partial class VmSpecValidator
{
    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")]
    private static partial Regex MacPattern();

    /// <summary>Returns every problem found; empty when the spec can run on a host with <paramref name="hostMemoryBytes"/>.</summary>
    public static IReadOnlyList<string> Validate(VmSpec spec, VmPaths paths, long hostMemoryBytes)
    {
        var errors = new List<string>();
        if (!NamePattern().IsMatch(spec.Name))
        {
            errors.Add($"name '{spec.Name}': use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit");
        }
        if (!Enum.IsDefined(spec.Machine))
        {
            errors.Add($"machine '{spec.Machine}': unknown machine type; use microvm or q35");
        }
        if (spec.Cpu.Sockets < 1 || spec.Cpu.Cores < 1 || spec.Cpu.Threads < 1)
        {
            errors.Add($"cpu: sockets, cores and threads must each be at least 1 (got {spec.Cpu.Sockets}/{spec.Cpu.Cores}/{spec.Cpu.Threads})");
        }
        else if (spec.Cpu.VCpus > 255)
        {
            errors.Add($"cpu: {spec.Cpu.VCpus} vCPUs is more than the 255 a VM may have");
        }
        if (spec.MemoryBytes < 16L << 20)
        {
            errors.Add($"memory: {spec.MemoryBytes} bytes is too little; give at least 16 MiB (e.g. --memory 256M)");
        }
        else if (spec.MemoryBytes > hostMemoryBytes)
        {
            errors.Add($"memory: {spec.MemoryBytes >> 20} MiB is more than this host has ({hostMemoryBytes >> 20} MiB)");
        }
        ValidateBoot(spec, errors);
        var diskNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var disk in spec.Disks)
        {
            if (!diskNames.Add(disk.Name))
            {
                errors.Add($"disks: two disks are named '{disk.Name}'");
            }
            if (disk.Datastore is not null || disk.DatastoreDisk is not null)
            {
                if (disk.Datastore is null || disk.DatastoreDisk is null)
                {
                    errors.Add($"disk '{disk.Name}': a datastore disk needs both the datastore and the disk name");
                }
                if (disk.File is not null || disk.NbdSocket is not null)
                {
                    errors.Add($"disk '{disk.Name}': give a datastore disk, a file or an NBD socket, not several");
                }
            }
            else if (disk.NbdSocket is null && disk.File is null)
            {
                errors.Add($"disk '{disk.Name}': give a file or an NBD socket");
            }
            else if (disk.NbdSocket is null && !File.Exists(disk.File))
            {
                errors.Add($"disk '{disk.Name}': file '{disk.File}' does not exist; create it first (e.g. truncate -s 1G {disk.File})");
            }
        }
        ValidateNics(spec, errors);
        foreach (var socket in new[] { paths.QmpSocket, paths.ConsoleSocket })
        {
            if (System.Text.Encoding.UTF8.GetByteCount(socket) > VmPaths.MaxSocketPathLength)
            {
                errors.Add($"state directory: socket path '{socket}' is longer than the {VmPaths.MaxSocketPathLength} bytes Linux allows; use a shorter --state-dir");
                break;
            }
        }
        return errors;
    }

    private static void ValidateNics(VmSpec spec, List<string> errors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var macs = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var nic in spec.Nics)
        {
            if (!NamePattern().IsMatch(nic.Name) || nic.Name.Length > 15)
            {
                errors.Add($"nic '{nic.Name}': name must be 1-15 lowercase letters, digits or '-' (e.g. eth0)");
            }
            if (!names.Add(nic.Name))
            {
                errors.Add($"nics: two NICs are named '{nic.Name}'");
            }
            if (nic.Mac.Length > 0 && !MacPattern().IsMatch(nic.Mac))
            {
                errors.Add($"nic '{nic.Name}': MAC '{nic.Mac}' is not of the form 52:54:00:12:34:56");
            }
            else if (nic.Mac.Length > 0 && !macs.Add(nic.Mac))
            {
                errors.Add($"nic '{nic.Name}': MAC {nic.Mac} is already the MAC of another NIC of this VM");
            }
            else if (nic.Mac.Length > 0 && (Convert.ToByte(nic.Mac[..2], 16) & 1) != 0)
            {
                errors.Add($"nic '{nic.Name}': MAC {nic.Mac} is a multicast address; a NIC needs a unicast one (first byte even, e.g. 52:54:00:...)");
            }
            if (nic.PortGroup is { } pg)
            {
                if (pg.Length == 0)
                {
                    errors.Add($"nic '{nic.Name}': port group name is empty; name the port group the NIC joins");
                }
                else if (nic.Tap.Length > 0 && nic.Tap != Network.DeviceNames.Tap(spec.Name, nic.Name))
                {
                    errors.Add($"nic '{nic.Name}': a NIC on port group '{pg}' gets its tap from the vSwitch; leave tap empty (or drop the port group to bring a tap of your own)");
                }
            }
            else if (nic.Tap.Length is 0 or > 15)
            {
                errors.Add($"nic '{nic.Name}': give a port group, or the name of a tap of your own (1 to 15 characters; got '{nic.Tap}')");
            }
        }
    }

    private static void ValidateBoot(VmSpec spec, List<string> errors)
    {
        var boot = spec.Boot;
        if (boot.Kernel is null)
        {
            if (spec.Machine == MachineType.Microvm)
            {
                errors.Add("boot: microvm boots a kernel directly; give a kernel (--kernel) or use machine q35 to boot from disk");
            }
            else if (spec.Disks.Count == 0)
            {
                errors.Add("boot: nothing to boot; give a kernel (--kernel) or a bootable disk (--disk)");
            }
            if (boot.Firmware == Firmware.Uefi && !File.Exists(Qemu.Devices.BootArgs.OvmfCode))
            {
                errors.Add($"boot.firmware: UEFI needs {Qemu.Devices.BootArgs.OvmfCode}; install the Debian package ovmf");
            }
            return;
        }
        if (!File.Exists(boot.Kernel))
        {
            errors.Add($"boot.kernel: file '{boot.Kernel}' does not exist; build the test guest with scripts/build-guest.sh or pass --kernel PATH");
        }
        if (boot.Initrd is not null && !File.Exists(boot.Initrd))
        {
            errors.Add($"boot.initrd: file '{boot.Initrd}' does not exist");
        }
    }
}
