namespace Vmk.Vmkernel.Network;

/// <summary>One external command the control plane issues to the kernel's tools (ip, nft, tc, dnsmasq).</summary>
/// <param name="Program">The tool, looked up on PATH.</param>
/// <param name="Args">Its arguments, exactly as passed.</param>
/// <param name="Stdin">Text fed on standard input (nft -f -), or null.</param>
public sealed record CommandRequest(string Program, IReadOnlyList<string> Args, string? Stdin = null)
{
    /// <summary>Reads change nothing; tests of idempotence count only the requests that are not reads.</summary>
    public bool IsRead =>
        (Program == "ip" && Args.Count > 0 && Args[0] == "-j")
        || (Program == "nft" && Args.Count > 0 && Args[0] == "-j")
        || (Program == "tc" && Args.Count > 0 && Args[0] == "-j")
        || (Program == "bridge" && Args.Count > 0 && Args[0] == "-j")
        || Program == "ping";

    public override string ToString() =>
        Program + " " + string.Join(' ', Args) + (Stdin is null ? "" : " <<EOF\n" + Stdin + "EOF");
}
