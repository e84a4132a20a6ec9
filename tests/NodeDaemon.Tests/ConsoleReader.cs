using System.Text;
using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.NodeDaemon.Tests;

/// <summary>Reads a Console call's output and waits for lines in it.</summary>
public sealed class ConsoleReader(AsyncDuplexStreamingCall<ConsoleInput, ConsoleOutput> call) : IDisposable
{
    private readonly StringBuilder _pending = new();
    private readonly List<string> _lines = [];

    public AsyncDuplexStreamingCall<ConsoleInput, ConsoleOutput> Call { get; } = call;

    public IReadOnlyList<string> Lines => _lines;

    public static async Task<ConsoleReader> AttachAsync(DaemonClient client, string vm, bool replayHistory, CancellationToken ct = default)
    {
        var call = client.Vms.Console(cancellationToken: ct);
        await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { Name = vm, ReplayHistory = replayHistory } }, ct);
        return new ConsoleReader(call);
    }

    /// <summary>Reads until a line satisfies <paramref name="match"/>; lines seen before this call are not searched again.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        while (await MoveNextAsync(cts.Token, deadline))
        {
            _pending.Append(Encoding.UTF8.GetString(Call.ResponseStream.Current.Data.Span));
            string? found = null;
            int newline;
            while ((newline = _pending.ToString().IndexOf('\n', StringComparison.Ordinal)) >= 0)
            {
                var line = _pending.ToString(0, newline).TrimEnd('\r');
                _pending.Remove(0, newline + 1);
                _lines.Add(line);
                if (found is null && match(line))
                {
                    found = line;
                }
            }
            if (found is not null)
            {
                return found;
            }
        }
        throw new InvalidOperationException($"the console ended before the expected line; it showed:\n{string.Join('\n', _lines.TakeLast(30))}");
    }

    /// <summary>The next message, or a timeout that shows what the guest printed last (a panic, say).</summary>
    private async Task<bool> MoveNextAsync(CancellationToken ct, TimeSpan deadline)
    {
        try
        {
            return await Call.ResponseStream.MoveNext(ct);
        }
        catch (Exception e) when (ct.IsCancellationRequested && e is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
        {
            var partial = _pending.Length > 0 ? $"\n{_pending}" : "";
            throw new TimeoutException($"no expected console line within {deadline.TotalSeconds:0} s; the console showed last:\n{string.Join('\n', _lines.TakeLast(40))}{partial}", e);
        }
    }

    /// <summary>Reads to the end of the call; true if the server ended it with OK.</summary>
    public async Task<StatusCode> ReadToEndAsync(TimeSpan deadline)
    {
        using var cts = new CancellationTokenSource(deadline);
        while (await Call.ResponseStream.MoveNext(cts.Token))
        {
        }
        return Call.GetStatus().StatusCode;
    }

    public void Dispose() => Call.Dispose();
}
