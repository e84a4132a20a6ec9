using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;
using VmObject = Vmk.Operator.Apis.V1Alpha1.VirtualMachine;

namespace Vmk.Operator.Controllers.VirtualMachines;

/// <summary>The daemon's VmSpec for a VirtualMachine: one place that maps the CRD onto the gRPC contract.</summary>
public static class VmSpecBuilder
{
    public static VmSpec Build(VmObject vm)
    {
        var s = vm.Spec;
        var ns = vm.Namespace ?? "default";
        var spec = new VmSpec
        {
            Name = VmNames.DaemonName(ns, vm.Name),
            Machine = CustomObject.Str(s, "machineType") == "q35" ? MachineType.Q35 : MachineType.Microvm,
            Cpu = new CpuSpec
            {
                Sockets = (int)(CustomObject.Long(s, "cpu", "sockets") ?? 1),
                Cores = (int)(CustomObject.Long(s, "cpu", "cores") ?? 1),
                Threads = (int)(CustomObject.Long(s, "cpu", "threads") ?? 1),
                SharesLevel = Shares(CustomObject.Str(s, "cpu", "shares")),
                Shares = (int)(CustomObject.Long(s, "cpu", "shareValue") ?? 0),
                ReservationMillicores = vm.CpuReservationMillicores,
                LimitMillicores = CustomObject.Quantity(s, true, "cpu", "limit") ?? 0,
            },
            Memory = new MemorySpec
            {
                SizeBytes = vm.MemoryBytes,
                ReservationBytes = vm.MemoryReservationBytes,
                LimitBytes = CustomObject.Quantity(s, false, "memory", "limit") ?? 0,
            },
            Boot = new BootSpec
            {
                Kernel = CustomObject.Str(s, "boot", "kernel") ?? "",
                Initrd = CustomObject.Str(s, "boot", "initrd") ?? "",
                Cmdline = CustomObject.Str(s, "boot", "cmdline") ?? "",
                Firmware = CustomObject.Str(s, "boot", "firmware") == "uefi" ? Firmware.Uefi : Firmware.Bios,
            },
            Owner = new VmOwner { Namespace = ns, Name = vm.Name, Uid = vm.Metadata.Uid ?? "" },
        };
        foreach (var d in vm.Disks)
        {
            var name = CustomObject.Str(d, "name") ?? "";
            spec.Disks.Add(new DiskSpec
            {
                Name = name,
                Datastore = CustomObject.Str(d, "datastore") ?? "",
                Disk = VmNames.DiskName(ns, vm.Name, name),
                ReadOnly = CustomObject.Bool(d, false, "readOnly"),
            });
        }
        foreach (var n in vm.Nics)
        {
            var name = CustomObject.Str(n, "name") ?? "";
            spec.Nics.Add(new NicSpec
            {
                Name = name,
                PortGroup = CustomObject.Str(n, "portGroup") ?? "",
                Mac = (CustomObject.Str(n, "mac") ?? VmNames.Mac(ns, vm.Name, name)).ToLowerInvariant(),
            });
        }
        return spec;
    }

    private static SharesLevel Shares(string? level) => level switch
    {
        "Low" => SharesLevel.Low,
        "High" => SharesLevel.High,
        "Custom" => SharesLevel.Custom,
        _ => SharesLevel.Normal,
    };
}
