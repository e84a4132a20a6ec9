using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>
/// Records every request and answers reads from a fixed picture of a host (a stand-in for the kernel, used only
/// by the unit tests of the exact requests; the kernel tests use the real one). Writes succeed unless
/// <see cref="Fail"/> says otherwise.
/// </summary>
internal sealed class ScriptedRunner : ICommandRunner
{
    public List<CommandRequest> Requests { get; } = [];

    /// <summary>`ip -j -d link show` output: by default one NIC, eth0.</summary>
    public string Links { get; set; } =
        """[{"ifname":"eth0","flags":["BROADCAST","UP","LOWER_UP"],"mtu":1500,"operstate":"UP","address":"02:00:00:00:00:01"}]""";

    public string Addresses { get; set; } = """[{"ifname":"eth0","addr_info":[{"local":"192.0.2.1","prefixlen":24}]}]""";

    public Func<CommandRequest, CommandResult?> Fail { get; set; } = _ => null;

    public IEnumerable<string> Writes => Requests.Where(r => !r.IsRead).Select(r => r.Program + " " + string.Join(' ', r.Args));

    public Task<CommandResult> RunAsync(CommandRequest request, CancellationToken ct = default)
    {
        Requests.Add(request);
        if (Fail(request) is { } failure)
        {
            return Task.FromResult(failure);
        }
        if (request.Program == "nft" && request.IsRead)
        {
            return Task.FromResult(new CommandResult(1, "", "Error: No such file or directory")); // no table yet
        }
        var line = string.Join(' ', request.Args);
        var stdout = (request.Program, line) switch
        {
            ("ip", "-j -d link show") => Links,
            ("ip", "-j -4 addr show") => Addresses,
            ("ip", _) when line.StartsWith("-j -4 addr show dev", StringComparison.Ordinal) => "[]",
            ("nft", _) when request.IsRead => "",
            ("bridge", _) when request.IsRead => "[]",
            _ => "",
        };
        return Task.FromResult(CommandResult.Success(stdout));
    }
}
