using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>Machine model and accelerator, and the defaults every VM turns off.</summary>
internal static class MachineArgs
{
    public static void Append(List<string> argv, VmSpec spec, QemuHostSettings host)
    {
        var accel = AcceleratorProbe.QemuAccelName(host.Accelerator);
        var machine = spec.Machine switch
        {
            MachineType.Microvm => $"microvm,accel={accel}",
            MachineType.Q35 => $"q35,accel={accel}",
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Machine, "unknown machine type"),
        };
        argv.AddRange(["-machine", machine, "-nodefaults", "-no-user-config", "-display", "none"]);
    }

    /// <summary>virtio transport per machine: microvm has only virtio-mmio, q35 uses PCI.</summary>
    public static string VirtioDevice(VmSpec spec, string kind) => spec.Machine == MachineType.Microvm
        ? $"virtio-{kind}-device"
        : $"virtio-{kind}-pci";
}
