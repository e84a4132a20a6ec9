namespace Vmk.Vmkernel.Network;

/// <summary>
/// The only way the network code reaches the kernel: every ip, nft, tc and dnsmasq invocation passes here, so
/// unit tests can check the exact requests and a host in a network namespace wraps them all in one place.
/// </summary>
public interface ICommandRunner
{
    Task<CommandResult> RunAsync(CommandRequest request, CancellationToken ct = default);
}
