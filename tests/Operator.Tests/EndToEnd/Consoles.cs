using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Grpc.Core;
using Vmk.NodeDaemon.Protos;

namespace Vmk.Operator.Tests.EndToEnd;

/// <summary>The guest's console lines as they arrive from each host it runs on (one follower per host, with history).</summary>
internal sealed class Consoles(TestCluster cluster, string vm) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<(string Host, string Line)> _lines = new();
    private readonly List<Task> _followers = [];
    private readonly HashSet<string> _following = [];
    private readonly ConcurrentQueue<(string Host, string Line)> _tail = new();

    public void Follow(TestNode node)
    {
        lock (_following)
        {
            _following.RemoveWhere(h => h == node.Name);
            _following.Add(node.Name);
            _followers.Add(Task.Run(() => ReadAsync(node)));
        }
    }

    public List<long> Numbers(string prefix, string? host = null) =>
        [.. _lines.Where(l => (host is null || l.Host == host) && l.Line.StartsWith(prefix, StringComparison.Ordinal)).Select(l => Number(l.Line))];

    public async Task WaitAsync(Func<string, bool> match, TimeSpan deadline, string what, string? host = null)
    {
        try
        {
            await Eventually.TrueAsync(() => _lines.Any(l => (host is null || l.Host == host) && match(l.Line)), what, deadline);
        }
        catch (Xunit.Sdk.FailException e)
        {
            // The guest's last words (a kernel oops, say) tell a stuck guest from a lost console.
            Assert.Fail($"{e.Message}; the console's last lines:\n{string.Join('\n', _tail.Select(l => $"{l.Host}: {l.Line}"))}");
        }
    }

    private async Task ReadAsync(TestNode node)
    {
        // The VM appears on a target only once prepared, and leaves a source at completion: attach until it exists.
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                using var call = cluster.Vms(node).Console(cancellationToken: _stop.Token);
                await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { Name = vm, ReplayHistory = true } }, _stop.Token);
                var pending = new StringBuilder();
                while (await call.ResponseStream.MoveNext(_stop.Token))
                {
                    pending.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
                    var text = pending.ToString();
                    var end = text.LastIndexOf('\n');
                    if (end < 0)
                    {
                        continue;
                    }
                    foreach (var line in text[..end].Split('\n'))
                    {
                        var l = line.Trim('\r', ' ');
                        _tail.Enqueue((node.Name, l));
                        while (_tail.Count > 40 && _tail.TryDequeue(out _))
                        {
                        }
                        if (l.StartsWith("VMK-", StringComparison.Ordinal) && !_lines.Contains((node.Name, l)))
                        {
                            _lines.Enqueue((node.Name, l));
                        }
                    }
                    pending.Clear().Append(text[(end + 1)..]);
                }
                return;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.NotFound or StatusCode.FailedPrecondition or StatusCode.Unavailable)
            {
                await Task.Delay(200, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }
            catch (RpcException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The number after the marker of a console line ("VMK-TICK 12" is 12).</summary>
    public static long Number(string line) => long.Parse(line[(line.IndexOf(' ', StringComparison.Ordinal) + 1)..].Trim(), CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_followers).WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
