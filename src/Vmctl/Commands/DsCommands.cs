using System.CommandLine;

namespace Vmk.Vmctl.Commands;

/// <summary>`vmctl ds`: Work on a VMFS datastore (device or file) directly, with no daemon running.</summary>
internal static class DsCommands
{
    public static Command Create()
    {
        var command = new Command("ds", "Work on a VMFS datastore (device or file) directly, with no daemon running");
        return command;
    }
}
