using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Qemu.Devices;

/// <summary>
/// The serial console on a unix socket that QEMU listens on. The VMkernel's console pump is its one client:
/// it keeps the bounded ring log and fans out to interactive consoles.
/// </summary>
internal static class SerialArgs
{
    public static void Append(List<string> argv, VmPaths paths)
    {
        argv.AddRange(["-chardev", $"socket,id=console,path={QemuCommandLine.EscapeOptionValue(paths.ConsoleSocket)},server=on,wait=off"]);
        argv.AddRange(["-serial", "chardev:console"]);
    }
}
