using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>
/// One virtio-blk disk. The backend is a -blockdev chain: a raw file, or an NBD export on a unix socket
/// (the VMkernel's storage stack). The guest device is the same either way.
/// </summary>
internal static class DiskArgs
{
    /// <summary>
    /// How long QEMU holds a disk request while its NBD server is away: a VMkernel restart takes the server
    /// down until the new process re-exports the disk (which may wait for this host's old disk leases).
    /// </summary>
    public const int ReconnectDelaySeconds = 60;

    public static void Append(List<string> argv, VmSpec spec, DiskSpec disk, int? bootIndex)
    {
        var node = $"disk-{disk.Name}";
        var readOnly = disk.ReadOnly ? "on" : "off";
        if (disk.NbdSocket is not null)
        {
            var export = disk.NbdExport ?? disk.Name;
            argv.AddRange(["-blockdev",
                $"driver=nbd,node-name={node},server.type=unix,server.path={QemuCommandLine.EscapeOptionValue(disk.NbdSocket)}," +
                $"export={QemuCommandLine.EscapeOptionValue(export)},reconnect-delay={ReconnectDelaySeconds},cache.direct=on,read-only={readOnly}"]);
        }
        else
        {
            var file = disk.File ?? throw new ArgumentException($"disk '{disk.Name}' has neither a file nor an NBD socket", nameof(disk));
            argv.AddRange(["-blockdev",
                $"driver=file,node-name={node}-file,filename={QemuCommandLine.EscapeOptionValue(file)},read-only={readOnly}"]);
            argv.AddRange(["-blockdev", $"driver=raw,node-name={node},file={node}-file,read-only={readOnly}"]);
        }
        var device = $"{MachineArgs.VirtioDevice(spec, "blk")},drive={node},id={node}-dev";
        if (bootIndex is int index && spec.Machine != MachineType.Microvm)
        {
            device += $",bootindex={index}";
        }
        argv.AddRange(["-device", device]);
    }
}
