using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Vmk.NodeDaemon.Agent;
using Vmk.Vmkernel.Resources;
using Vk = Vmk.Vmkernel.Vm;
using Api = Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Services;

/// <summary>
/// The one place where the API's VM shape meets the VMkernel's: proto spec to <see cref="Vk.VmSpec"/> (checking
/// what only the daemon can check: allowed paths, mounted datastores, realized port groups, host size) and
/// back. Malformed fields are INVALID_ARGUMENT, all named at once; a well-formed spec this host cannot run is
/// FAILED_PRECONDITION.
/// </summary>
public sealed class VmSpecConverter(PathPolicy paths, HostAllocation allocation, VmkernelRunner storage)
{
    public const long DefaultMemoryBytes = 256L << 20;

    public Vk.VmSpec ToVmkernel(Api.VmSpec? spec)
    {
        if (spec is null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "spec: missing; give at least spec.name and spec.boot.kernel"));
        }
        var invalid = new List<string>();
        var unsatisfiable = new List<string>();
        if (string.IsNullOrEmpty(spec.Name))
        {
            invalid.Add("spec.name: missing");
        }
        var machine = spec.Machine switch
        {
            Api.MachineType.Unspecified or Api.MachineType.Microvm => Vk.MachineType.Microvm,
            Api.MachineType.Q35 => Vk.MachineType.Q35,
            _ => Fail(invalid, $"spec.machine: unknown value {(int)spec.Machine}; use MICROVM or Q35", Vk.MachineType.Microvm),
        };
        var cpu = spec.Cpu ?? new Api.CpuSpec();
        var topology = new Vk.CpuTopology(Or1(cpu.Sockets), Or1(cpu.Cores), Or1(cpu.Threads));
        var memory = spec.Memory?.SizeBytes is > 0 ? spec.Memory.SizeBytes : DefaultMemoryBytes;
        var resources = ToResources(spec, topology, invalid);
        var boot = ToBoot(spec.Boot, invalid, unsatisfiable);
        var disks = ToDisks(spec, invalid, unsatisfiable);
        var nics = ToNics(spec, invalid, unsatisfiable);
        var capacity = allocation.Capacity;
        if (memory > capacity.MemoryBytes)
        {
            unsatisfiable.Add($"memory: {memory >> 20} MiB is more than this host has ({capacity.MemoryBytes >> 20} MiB); give the VM less memory or place it on a bigger host");
        }
        if (resources is not null)
        {
            var allocatable = allocation.Allocatable;
            if ((resources.MemoryReservationBytes ?? 0) > allocatable.MemoryBytes)
            {
                unsatisfiable.Add($"memory.reservation_bytes: {resources.MemoryReservationBytes >> 20} MiB can never be reserved here (allocatable {allocatable.MemoryBytes >> 20} MiB)");
            }
            if ((resources.CpuReservationMillicores ?? 0) > allocatable.CpuMillicores)
            {
                unsatisfiable.Add($"cpu.reservation_millicores: {resources.CpuReservationMillicores}m can never be reserved here (allocatable {allocatable.CpuMillicores}m)");
            }
        }
        if (invalid.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"VM '{spec.Name}': " + string.Join("; ", invalid)));
        }
        if (unsatisfiable.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"VM '{spec.Name}' cannot run on this host: " + string.Join("; ", unsatisfiable)));
        }
        return new Vk.VmSpec
        {
            Name = spec.Name,
            Machine = machine,
            Cpu = topology,
            MemoryBytes = memory,
            Boot = boot,
            Disks = disks,
            Nics = nics,
            Resources = resources,
        };
    }

    public static Api.Vm ToProto(Vk.VirtualMachine vm, Vk.VmStatus status, VmOwnerRecord owner) => new()
    {
        Spec = ToProto(vm.Spec, owner),
        Status = new Api.VmStatus
        {
            State = ToProto(status.State),
            Reason = status.Reason,
            Since = Timestamp.FromDateTimeOffset(status.Since),
            QemuPid = HostAllocation.IsPoweredOn(status.State) ? vm.Pid ?? 0 : 0,
            GuestAddresses =
            {
                vm.GuestAddresses.Select(a => new Api.NicAddress { Nic = a.Nic, Mac = a.Mac, PortGroup = a.PortGroup ?? "", Addresses = { a.Addresses } }),
            },
        },
    };

    public static Api.VmSpec ToProto(Vk.VmSpec spec, VmOwnerRecord owner)
    {
        var r = spec.Resources;
        var pb = new Api.VmSpec
        {
            Name = spec.Name,
            Machine = spec.Machine == Vk.MachineType.Q35 ? Api.MachineType.Q35 : Api.MachineType.Microvm,
            Cpu = new Api.CpuSpec
            {
                Sockets = spec.Cpu.Sockets,
                Cores = spec.Cpu.Cores,
                Threads = spec.Cpu.Threads,
                SharesLevel = r?.CpuShares.Level switch
                {
                    SharesLevel.Low => Api.SharesLevel.Low,
                    SharesLevel.High => Api.SharesLevel.High,
                    SharesLevel.Custom => Api.SharesLevel.Custom,
                    _ => Api.SharesLevel.Normal,
                },
                Shares = r?.CpuShares.Level == SharesLevel.Custom ? r.CpuShares.Value : 0,
                ReservationMillicores = r?.CpuReservationMillicores ?? 0,
                LimitMillicores = r?.CpuLimitMillicores ?? 0,
            },
            Memory = new Api.MemorySpec
            {
                SizeBytes = spec.MemoryBytes,
                ReservationBytes = r?.MemoryReservationBytes ?? 0,
                LimitBytes = r?.MemoryLimitBytes ?? 0,
            },
            Boot = new Api.BootSpec
            {
                Kernel = spec.Boot.Kernel ?? "",
                Initrd = spec.Boot.Initrd ?? "",
                Cmdline = spec.Boot.Cmdline ?? "",
                Firmware = spec.Boot.Firmware == Vk.Firmware.Uefi ? Api.Firmware.Uefi : Api.Firmware.Bios,
            },
            Owner = new Api.VmOwner { Namespace = owner.Namespace, Name = owner.Name, Uid = owner.Uid },
        };
        foreach (var disk in spec.Disks)
        {
            pb.Disks.Add(new Api.DiskSpec { Name = disk.Name, Datastore = disk.Datastore ?? "", Disk = disk.DatastoreDisk ?? "", ReadOnly = disk.ReadOnly });
        }
        foreach (var nic in spec.Nics)
        {
            pb.Nics.Add(new Api.NicSpec { Name = nic.Name, PortGroup = nic.PortGroup ?? "", Mac = nic.Mac });
        }
        return pb;
    }

    public static Api.VmState ToProto(Vk.VmState state) => state switch
    {
        Vk.VmState.Stopped => Api.VmState.Stopped,
        Vk.VmState.Starting => Api.VmState.Starting,
        Vk.VmState.Running => Api.VmState.Running,
        Vk.VmState.Paused => Api.VmState.Paused,
        Vk.VmState.Stopping => Api.VmState.Stopping,
        Vk.VmState.Failed => Api.VmState.Failed,
        _ => Api.VmState.Unspecified,
    };

    // Only NICs on port groups: the API has no way to hand a VM a tap of the caller's own. Tap and an empty MAC
    // are derived by the VMkernel, stably per VM and NIC.
    private List<Vk.NicSpec> ToNics(Api.VmSpec spec, List<string> invalid, List<string> unsatisfiable)
    {
        var nics = new List<Vk.NicSpec>();
        foreach (var nic in spec.Nics)
        {
            if (string.IsNullOrEmpty(nic.Name) || string.IsNullOrEmpty(nic.PortGroup))
            {
                invalid.Add($"spec.nics['{nic.Name}']: give name and port_group");
                continue;
            }
            if (nic.Mac.Length > 0 && !System.Text.RegularExpressions.Regex.IsMatch(nic.Mac, "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"))
            {
                invalid.Add($"spec.nics['{nic.Name}'].mac: '{nic.Mac}' is not of the form 52:54:00:12:34:56; leave it empty for one derived from the VM and NIC names");
                continue;
            }
            if (storage.Host.Network.Switch.Find(nic.PortGroup) is null)
            {
                unsatisfiable.Add($"nic '{nic.Name}': port group '{nic.PortGroup}' is not realized on this host; apply it first (PortGroupService.Apply)");
                continue;
            }
            nics.Add(new Vk.NicSpec { Name = nic.Name, PortGroup = nic.PortGroup, Mac = nic.Mac });
        }
        return nics;
    }

    // Only datastore disks: the API has no way to name a host file or a foreign NBD socket as a disk.
    private List<Vk.DiskSpec> ToDisks(Api.VmSpec spec, List<string> invalid, List<string> unsatisfiable)
    {
        var disks = new List<Vk.DiskSpec>();
        foreach (var disk in spec.Disks)
        {
            if (string.IsNullOrEmpty(disk.Name) || string.IsNullOrEmpty(disk.Datastore) || string.IsNullOrEmpty(disk.Disk))
            {
                invalid.Add($"spec.disks['{disk.Name}']: give name, datastore and disk");
                continue;
            }
            var mount = storage.Host.Storage.Datastores.FirstOrDefault(d => d.Name == disk.Datastore);
            if (mount is null)
            {
                unsatisfiable.Add($"disk '{disk.Name}': datastore '{disk.Datastore}' is not mounted on this host; mount it first (DatastoreService.Mount)");
                continue;
            }
            if (!mount.Datastore.List().Any(d => d.Name == disk.Disk))
            {
                unsatisfiable.Add($"disk '{disk.Name}': datastore '{disk.Datastore}' has no virtual disk '{disk.Disk}'; create it first (vmctl disk create)");
                continue;
            }
            disks.Add(new Vk.DiskSpec { Name = disk.Name, Datastore = disk.Datastore, DatastoreDisk = disk.Disk, ReadOnly = disk.ReadOnly });
        }
        return disks;
    }

    private Vk.BootSpec ToBoot(Api.BootSpec? boot, List<string> invalid, List<string> unsatisfiable)
    {
        boot ??= new Api.BootSpec();
        var firmware = boot.Firmware switch
        {
            Api.Firmware.Unspecified or Api.Firmware.Bios => Vk.Firmware.Bios,
            Api.Firmware.Uefi => Vk.Firmware.Uefi,
            _ => Fail(invalid, $"spec.boot.firmware: unknown value {(int)boot.Firmware}; use BIOS or UEFI", Vk.Firmware.Bios),
        };
        string? Resolve(string field, string path)
        {
            if (string.IsNullOrEmpty(path))
            {
                return null;
            }
            if (paths.TryResolveImage(field, path, out var resolved, out var error))
            {
                return resolved;
            }
            unsatisfiable.Add(error);
            return null;
        }
        return new Vk.BootSpec
        {
            Kernel = Resolve("spec.boot.kernel", boot.Kernel),
            Initrd = Resolve("spec.boot.initrd", boot.Initrd),
            Cmdline = string.IsNullOrEmpty(boot.Cmdline) ? null : boot.Cmdline,
            Firmware = firmware,
        };
    }

    private static VmResources? ToResources(Api.VmSpec spec, Vk.CpuTopology topology, List<string> invalid)
    {
        var cpu = spec.Cpu ?? new Api.CpuSpec();
        var memory = spec.Memory ?? new Api.MemorySpec();
        CpuShares shares;
        try
        {
            shares = cpu.SharesLevel switch
            {
                Api.SharesLevel.Unspecified or Api.SharesLevel.Normal => CpuShares.ForLevel(SharesLevel.Normal, Math.Max(1, topology.VCpus)),
                Api.SharesLevel.Low => CpuShares.ForLevel(SharesLevel.Low, Math.Max(1, topology.VCpus)),
                Api.SharesLevel.High => CpuShares.ForLevel(SharesLevel.High, Math.Max(1, topology.VCpus)),
                Api.SharesLevel.Custom => CpuShares.Custom(cpu.Shares),
                _ => throw new ArgumentException($"unknown shares level {(int)cpu.SharesLevel}; use LOW, NORMAL, HIGH or CUSTOM"),
            };
        }
        catch (ArgumentException e)
        {
            invalid.Add($"spec.cpu.shares: {FirstLine(e.Message)}");
            return null;
        }
        foreach (var (field, value) in new[]
        {
            ("spec.cpu.reservation_millicores", cpu.ReservationMillicores), ("spec.cpu.limit_millicores", cpu.LimitMillicores),
            ("spec.memory.reservation_bytes", memory.ReservationBytes), ("spec.memory.limit_bytes", memory.LimitBytes),
        })
        {
            if (value < 0)
            {
                invalid.Add($"{field}: {value} is negative; use 0 for none");
            }
        }
        var resources = new VmResources(shares,
            CpuLimitMillicores: cpu.LimitMillicores > 0 ? cpu.LimitMillicores : null,
            MemoryLimitBytes: memory.LimitBytes > 0 ? memory.LimitBytes : null,
            MemoryReservationBytes: memory.ReservationBytes > 0 ? memory.ReservationBytes : null,
            CpuReservationMillicores: cpu.ReservationMillicores > 0 ? cpu.ReservationMillicores : null);
        try
        {
            resources.Validate();
        }
        catch (ArgumentException e)
        {
            invalid.Add($"spec.{(e.ParamName ?? "resources")}: {FirstLine(e.Message)}");
            return null;
        }
        return resources.CpuShares.Level == SharesLevel.Normal && resources is { CpuLimitMillicores: null, MemoryLimitBytes: null, MemoryReservationBytes: null, CpuReservationMillicores: null }
            ? null
            : resources;
    }

    // ArgumentException appends " (Parameter 'x')" on a line of its own; the first line is the message a person reads.
    private static string FirstLine(string message)
    {
        var i = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        return i >= 0 ? message[..i] : message;
    }

    private static int Or1(int value) => value == 0 ? 1 : value;

    private static T Fail<T>(List<string> errors, string error, T fallback)
    {
        errors.Add(error);
        return fallback;
    }
}
