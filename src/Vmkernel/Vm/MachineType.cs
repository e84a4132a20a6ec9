namespace Vmk.Vmkernel.Vm;

/// <summary>The QEMU machine model a VM runs on.</summary>
public enum MachineType
{
    /// <summary>Direct kernel boot, virtio-mmio devices: the fastest start.</summary>
    Microvm,

    /// <summary>A PC with PCIe: disk boot through SeaBIOS or OVMF, virtio-pci devices.</summary>
    Q35,
}
