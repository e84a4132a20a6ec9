using Vmk.Vmkernel.Qemu;
using Vmk.Vmkernel.Qemu.Accel;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Qemu;

/// <summary>Spec in, argv out: the command line is data and is checked as data before any QEMU runs.</summary>
public class QemuCommandLineTests
{
    private static readonly VmPaths Paths = new("/run/vmk/vms/web1");
    private static readonly QemuHostSettings Tcg = new(Accelerator.Tcg, RunAsUser: null, Sandbox: true);
    private static readonly QemuHostSettings Kvm = Tcg with { Accelerator = Accelerator.Kvm };

    private static VmSpec Guest(Func<VmSpec, VmSpec>? change = null)
    {
        var spec = new VmSpec
        {
            Name = "web1",
            Boot = new BootSpec { Kernel = "/g/vmlinux", Initrd = "/g/initrd.gz", Cmdline = "console=ttyS0 tsc=reliable" },
        };
        return change is null ? spec : change(spec);
    }

    /// <summary>The value that follows the first occurrence of <paramref name="flag"/>.</summary>
    private static string After(IReadOnlyList<string> argv, string flag) => argv[argv.ToList().IndexOf(flag) + 1];

    private static List<string> AllAfter(IReadOnlyList<string> argv, string flag) =>
        argv.Select((a, i) => (a, i)).Where(x => x.a == flag).Select(x => argv[x.i + 1]).ToList();

    [Theory]
    [InlineData(MachineType.Microvm, Accelerator.Kvm, "300M")]
    [InlineData(MachineType.Q35, Accelerator.Kvm, "300M")]
    [InlineData(MachineType.Microvm, Accelerator.Tcg, "307208K")]
    [InlineData(MachineType.Q35, Accelerator.Tcg, "307208K")]
    public void A_migration_target_waits_for_the_stream_with_the_memory_its_source_has_and_nothing_faulted_in_ahead(MachineType machine, Accelerator accelerator, string size)
    {
        var spec = Guest(s => s with { Machine = machine, MemoryBytes = 300L << 20 });
        var host = Tcg with { Accelerator = accelerator };

        var target = QemuCommandLine.Build(spec, Paths, host).Concat(QemuCommandLine.IncomingMigrationArgs()).ToList();

        Assert.Equal("defer", After(target, "-incoming"));
        // The RAM block the stream names and sizes is the one -m gives, on both sides; no backend faults it in first.
        Assert.Equal(size, After(target, "-m"));
        Assert.DoesNotContain(target, a => a.Contains("prealloc", StringComparison.Ordinal) || a.StartsWith("memory-backend", StringComparison.Ordinal));
    }

    [Fact]
    public void Microvm_direct_kernel_boot_matches_the_command_known_to_boot()
    {
        var argv = QemuCommandLine.Build(Guest(), Paths, Tcg);

        Assert.Equal("microvm,accel=tcg", After(argv, "-machine"));
        Assert.Equal("max", After(argv, "-cpu"));
        Assert.Equal("262152K", After(argv, "-m")); // 256 MiB and TCG's 8 KiB (MemoryArgs.TcgPadBytes)
        Assert.Equal("/g/vmlinux", After(argv, "-kernel"));
        Assert.Equal("/g/initrd.gz", After(argv, "-initrd"));
        Assert.Equal("console=ttyS0 tsc=reliable", After(argv, "-append")); // no TSC rate known: nothing added
        Assert.Contains("-nodefaults", argv);
        Assert.Contains("-no-user-config", argv);
        Assert.Equal("none", After(argv, "-display"));
        Assert.DoesNotContain("-S", argv);
    }

    [Fact]
    public void Control_sockets_and_pidfile_live_in_the_vm_state_directory()
    {
        var argv = QemuCommandLine.Build(Guest(), Paths, Tcg);

        Assert.Equal("unix:/run/vmk/vms/web1/qmp.sock,server=on,wait=off", After(argv, "-qmp"));
        Assert.Equal("/run/vmk/vms/web1/qemu.pid", After(argv, "-pidfile"));
        Assert.Equal("socket,id=console,path=/run/vmk/vms/web1/console.sock,server=on,wait=off", After(argv, "-chardev"));
        Assert.Equal("chardev:console", After(argv, "-serial"));
    }

    [Fact]
    public void Kvm_passes_the_host_cpu_through()
    {
        var argv = QemuCommandLine.Build(Guest(), Paths, Tcg with { Accelerator = Accelerator.Kvm });

        Assert.Equal("microvm,accel=kvm", After(argv, "-machine"));
        Assert.Equal("host", After(argv, "-cpu"));
    }

    [Fact]
    public void Cpu_topology_and_memory_are_passed_exactly()
    {
        var argv = QemuCommandLine.Build(Guest(s => s with { Cpu = new CpuTopology(2, 3, 2), MemoryBytes = 3L << 30 }), Paths, Kvm);

        Assert.Equal("cpus=12,sockets=2,cores=3,threads=2", After(argv, "-smp"));
        Assert.Equal("3072M", After(argv, "-m"));
    }

    [Fact]
    public void Memory_that_is_not_a_whole_mebibyte_is_rounded_up()
    {
        var argv = QemuCommandLine.Build(Guest(s => s with { MemoryBytes = (256L << 20) + 1 }), Paths, Kvm);

        Assert.Equal("257M", After(argv, "-m"));
    }

    [Fact]
    public void A_tcg_guest_has_8_KiB_past_its_whole_mebibytes_so_that_qemu_tracks_every_write_of_a_migration()
    {
        // A RAM block of a whole number of 64-page words takes QEMU 7.2's dirty-bitmap fast path, which loses TCG
        // stores during a live migration (MemoryArgs.TcgPadBytes); 8 KiB more takes the path that does not.
        var size = After(QemuCommandLine.Build(Guest(s => s with { MemoryBytes = (256L << 20) + 1 }), Paths, Tcg), "-m");

        Assert.Equal("263176K", size); // 257 MiB + 8 KiB
    }

    [Fact]
    public void File_disks_become_a_raw_blockdev_chain_on_virtio_mmio_for_microvm()
    {
        var argv = QemuCommandLine.Build(Guest(s => s with { Disks = [new DiskSpec { Name = "root", File = "/d/root.img" }] }), Paths, Tcg);

        Assert.Equal(
            ["driver=file,node-name=disk-root-file,filename=/d/root.img,read-only=off",
             "driver=raw,node-name=disk-root,file=disk-root-file,read-only=off"],
            AllAfter(argv, "-blockdev"));
        Assert.Equal("virtio-blk-device,drive=disk-root,id=disk-root-dev", After(argv, "-device"));
    }

    [Fact]
    public void Nbd_disks_reach_the_storage_stack_over_a_unix_socket()
    {
        var disk = new DiskSpec { Name = "d0", NbdSocket = "/run/vmk/nbd.sock", NbdExport = "ds1/web1-root", ReadOnly = true };
        var argv = QemuCommandLine.Build(Guest(s => s with { Disks = [disk] }), Paths, Tcg);

        Assert.Equal(
            "driver=nbd,node-name=disk-d0,server.type=unix,server.path=/run/vmk/nbd.sock,export=ds1/web1-root,reconnect-delay=60,cache.direct=on,read-only=on",
            After(argv, "-blockdev"));
    }

    [Fact]
    public void Q35_uses_virtio_pci_and_boots_the_first_disk_when_there_is_no_kernel()
    {
        var spec = Guest(s => s with
        {
            Machine = MachineType.Q35,
            Boot = new BootSpec(),
            Disks = [new DiskSpec { Name = "root", File = "/d/root.img" }, new DiskSpec { Name = "data", File = "/d/data.img" }],
        });
        var argv = QemuCommandLine.Build(spec, Paths, Tcg);

        Assert.Equal("q35,accel=tcg", After(argv, "-machine"));
        Assert.DoesNotContain("-kernel", argv);
        Assert.Equal(
            ["virtio-blk-pci,drive=disk-root,id=disk-root-dev,bootindex=1", "virtio-blk-pci,drive=disk-data,id=disk-data-dev"],
            AllAfter(argv, "-device"));
    }

    [Fact]
    public void Uefi_firmware_is_mapped_read_only_from_ovmf()
    {
        var spec = Guest(s => s with { Machine = MachineType.Q35, Boot = new BootSpec { Firmware = Firmware.Uefi } });
        var argv = QemuCommandLine.Build(spec, Paths, Tcg);

        Assert.Equal("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd", After(argv, "-drive"));
    }

    [Fact]
    public void Nics_are_virtio_net_on_a_tap_with_the_given_mac()
    {
        var nic = new NicSpec { Name = "eth0", Tap = "vmk-web1-0", Mac = "52:54:00:aa:bb:cc" };
        var argv = QemuCommandLine.Build(Guest(s => s with { Nics = [nic] }), Paths, Tcg);

        Assert.Equal("tap,id=net-eth0,ifname=vmk-web1-0,script=no,downscript=no", After(argv, "-netdev"));
        Assert.Equal("virtio-net-device,netdev=net-eth0,mac=52:54:00:aa:bb:cc,id=net-eth0-dev", After(argv, "-device"));
    }

    [Fact]
    public void The_sandbox_denies_privilege_changes_unless_qemu_must_drop_privileges_itself()
    {
        var root = QemuCommandLine.Build(Guest(), Paths, Tcg);
        var dropping = QemuCommandLine.Build(Guest(), Paths, Tcg with { RunAsUser = "vmkernel-qemu" });
        var none = QemuCommandLine.Build(Guest(), Paths, Tcg with { Sandbox = false });

        Assert.Equal("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", After(root, "-sandbox"));
        Assert.DoesNotContain("-runas", root);
        Assert.Equal("on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny", After(dropping, "-sandbox"));
        Assert.Equal("vmkernel-qemu", After(dropping, "-runas"));
        Assert.DoesNotContain("-sandbox", none);
    }

    [Fact]
    public void An_incoming_migration_target_starts_paused()
    {
        var argv = QemuCommandLine.Build(Guest(s => s with { StartPaused = true }), Paths, Tcg);

        Assert.Contains("-S", argv);
    }

    [Fact]
    public void Commas_in_paths_are_escaped_the_way_qemu_expects()
    {
        var argv = QemuCommandLine.Build(Guest(s => s with { Disks = [new DiskSpec { Name = "d0", File = "/d/a,b.img" }] }), new VmPaths("/run/x,y"), Tcg);

        Assert.StartsWith("driver=file,node-name=disk-d0-file,filename=/d/a,,b.img,", After(argv, "-blockdev"));
        Assert.Equal("unix:/run/x,,y/qmp.sock,server=on,wait=off", After(argv, "-qmp"));
    }

    [Fact]
    public void The_shell_line_quotes_what_the_shell_would_split()
    {
        var line = QemuCommandLine.ToShellLine("qemu-system-x86_64", ["-append", "console=ttyS0 tsc=reliable", "-name", "it's"]);

        Assert.Equal("qemu-system-x86_64 -append 'console=ttyS0 tsc=reliable' -name 'it'\\''s'", line);
    }

    [Fact]
    public void Under_tcg_the_guest_is_told_the_tsc_rate_so_it_never_calibrates()
    {
        var argv = QemuCommandLine.Build(Guest(s => s with { Boot = s.Boot with { Cmdline = "console=ttyS0" } }), Paths, Tcg with { TscKhz = 2096011 });

        Assert.Equal("console=ttyS0 tsc=reliable tsc_early_khz=2096011", After(argv, "-append"));
    }

    [Fact]
    public void Clock_parameters_the_user_set_are_kept_and_kvm_guests_get_none()
    {
        var user = Guest(s => s with { Boot = s.Boot with { Cmdline = "console=ttyS0 tsc=unstable tsc_early_khz=1000" } });

        Assert.Equal("console=ttyS0 tsc=unstable tsc_early_khz=1000", After(QemuCommandLine.Build(user, Paths, Tcg with { TscKhz = 2096011 }), "-append"));
        Assert.Equal("console=ttyS0 tsc=unstable tsc_early_khz=1000", After(QemuCommandLine.Build(user, Paths, Tcg with { Accelerator = Accelerator.Kvm, TscKhz = 2096011 }), "-append"));
    }
}
