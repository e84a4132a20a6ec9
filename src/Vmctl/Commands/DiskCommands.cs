using System.CommandLine;

namespace Vmk.Vmctl.Commands;

/// <summary>`vmctl disk`: Move virtual disks in and out of a datastore.</summary>
internal static class DiskCommands
{
    public static Command Create()
    {
        var command = new Command("disk", "Move virtual disks in and out of a datastore");
        return command;
    }
}
