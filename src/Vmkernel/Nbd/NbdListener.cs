using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// One listening socket of an <see cref="NbdServer"/> (a unix socket path or a TCP endpoint). Disposing it stops
/// accepting (connections already accepted keep running) and removes the unix socket file.
/// </summary>
public sealed class NbdListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NbdServer _server;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private int _disposed;

    internal NbdListener(Socket socket, NbdServer server, ILogger logger, string? unixPath)
    {
        _socket = socket;
        _server = server;
        _logger = logger;
        UnixPath = unixPath;
        EndPoint = socket.LocalEndPoint!;
        Description = unixPath is null ? EndPoint.ToString()! : $"unix:{unixPath}";
        NbdLog.Listening(logger, Description);
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The bound endpoint (for TCP with port 0, the port actually chosen).</summary>
    public EndPoint EndPoint { get; }

    /// <summary>The socket file for unix listeners, else null.</summary>
    public string? UnixPath { get; }

    /// <summary>TCP port for TCP listeners, else 0.</summary>
    public int Port => EndPoint is IPEndPoint ip ? ip.Port : 0;

    internal string Description { get; }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        try
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        if (UnixPath is not null)
        {
            try
            {
                File.Delete(UnixPath);
            }
            catch (IOException)
            {
                // Someone else's now; leave it.
            }
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        long sequence = 0;
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (_stop.IsCancellationRequested && ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset or SocketError.TooManyOpenSockets)
            {
                // One failed accept (a client that gave up, or fd exhaustion) must not stop the listener.
                NbdLog.AcceptFailed(_logger, ex, Description);
                continue;
            }
            catch (Exception ex)
            {
                NbdLog.AcceptFailed(_logger, ex, Description);
                return;
            }

            sequence++;
            string peer = client.RemoteEndPoint is IPEndPoint remote ? remote.ToString() : $"{Description}#{sequence}";
            _server.StartConnection(client, peer);
        }
    }
}
