using System.CommandLine;

namespace Vmk.Vmctl.Commands;

/// <summary>`vmctl vm`: Run and control virtual machines.</summary>
internal static class VmCommands
{
    public static Command Create()
    {
        var command = new Command("vm", "Run and control virtual machines");
        return command;
    }
}
