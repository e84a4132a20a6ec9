namespace Vmk.Vmkernel.Network;

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public bool Ok => ExitCode == 0;

    public static CommandResult Success(string stdout = "") => new(0, stdout, "");
}
