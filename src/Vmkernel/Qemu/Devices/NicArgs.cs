using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>A virtio-net NIC on a tap that the vSwitch created and attached to its port group.</summary>
internal static class NicArgs
{
    public static void Append(List<string> argv, VmSpec spec, NicSpec nic)
    {
        var id = $"net-{nic.Name}";
        argv.AddRange(["-netdev", $"tap,id={id},ifname={nic.Tap},script=no,downscript=no"]);
        argv.AddRange(["-device", $"{MachineArgs.VirtioDevice(spec, "net")},netdev={id},mac={nic.Mac},id={id}-dev"]);
    }
}
