using System.Text;
using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>Attaches to a VM's serial console through its daemon and waits for a line.</summary>
internal static class ConsoleReader
{
    public static async Task<string> WaitForLineAsync(VmService.VmServiceClient vms, string vm, string marker, TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        using var call = vms.Console(cancellationToken: cts.Token);
        await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { Name = vm, ReplayHistory = true } }, cts.Token);
        var text = new StringBuilder();
        try
        {
            while (await call.ResponseStream.MoveNext(cts.Token))
            {
                text.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
                var s = text.ToString();
                var at = s.IndexOf(marker, StringComparison.Ordinal);
                if (at >= 0)
                {
                    var end = s.IndexOf('\n', at);
                    return end < 0 ? s[at..] : s[at..end].TrimEnd('\r');
                }
            }
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
        {
        }
        throw new TimeoutException($"the console of {vm} did not show {marker} within {deadline.TotalSeconds} s; it showed:\n{(text.Length > 3000 ? text.ToString()[^3000..] : text)}");
    }
}
