using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// The VMkernel's NBD server: many named exports (block devices) served over unix sockets and TCP to QEMU and any
/// other NBD client. Exports come and go at run time; each keeps counters for the metrics endpoint.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, NbdExport> _exports = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<NbdConnection, byte> _connections = new();
    private readonly List<NbdListener> _listeners = [];
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly NbdWorkerPool _workers;
    private readonly NbdIoBufferPool _buffers = new();
    private long _connectionSequence;
    private volatile bool _disposed;

    public NbdServer(NbdServerOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        _options = options ?? new NbdServerOptions();
        _options.Validate();
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<NbdServer>();
        _workers = new NbdWorkerPool(_options.IoThreads);
    }

    public IReadOnlyCollection<NbdExport> Exports => [.. _exports.Values.OrderBy(e => e.Name, StringComparer.Ordinal)];

    /// <summary>Connections currently open (handshaking or transmitting).</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>
    /// Serves <paramref name="device"/> as <paramref name="name"/>. The device stays the caller's: keep it open until
    /// <see cref="RemoveExportAsync"/> has returned.
    /// </summary>
    public NbdExport AddExport(string name, IBlockDevice device, bool readOnly = false, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(device);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (name.Contains('\0', StringComparison.Ordinal) || Encoding.UTF8.GetByteCount(name) > 4096)
        {
            throw new ArgumentException($"NBD export name '{name}' must be at most 4096 UTF-8 bytes without NUL characters", nameof(name));
        }

        var export = new NbdExport(name, device, readOnly, description);
        if (!_exports.TryAdd(name, export))
        {
            throw new InvalidOperationException($"NBD export '{name}' already exists; remove it before adding it again");
        }

        NbdLog.ExportAdded(_logger, name, export.Size, export.ReadOnly);
        return export;
    }

    /// <summary>
    /// Stops serving <paramref name="name"/>: new clients are refused, connected ones are disconnected, and the task
    /// completes once no request is running against the device. False if there was no such export.
    /// </summary>
    public async Task<bool> RemoveExportAsync(string name)
    {
        if (!_exports.TryRemove(name, out var export))
        {
            return false;
        }

        await export.RemoveAsync().ConfigureAwait(false);
        NbdLog.ExportRemoved(_logger, name);
        return true;
    }

    public NbdExport? FindExport(string name) => _exports.TryGetValue(name, out var export) && !export.IsRemoved ? export : null;

    /// <summary>Counters of every export, for the metrics endpoint.</summary>
    public IReadOnlyList<NbdExportSnapshot> GetStatistics() => [.. Exports.Select(e => e.GetSnapshot())];

    /// <summary>Listens on a unix socket at <paramref name="path"/> (a stale socket file there is replaced).</summary>
    public NbdListener ListenUnix(string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var full = Path.GetFullPath(path);
        if (File.Exists(full))
        {
            if (!IsSocketFile(full) || !IsStaleSocket(full))
            {
                throw new IOException($"cannot listen on {full}: the file exists and is not a stale socket; remove it or choose another path");
            }

            File.Delete(full);
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(full));
            socket.Listen(128);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return AddListener(new NbdListener(socket, this, _logger, full));
    }

    /// <summary>Listens on TCP (port 0 picks a free port; see <see cref="NbdListener.Port"/>).</summary>
    public NbdListener ListenTcp(IPEndPoint endpoint)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endpoint);
            socket.Listen(128);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return AddListener(new NbdListener(socket, this, _logger, null));
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        NbdListener[] listeners;
        lock (_listeners)
        {
            listeners = [.. _listeners];
            _listeners.Clear();
        }

        foreach (var listener in listeners)
        {
            await listener.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var name in _exports.Keys.ToArray())
        {
            await RemoveExportAsync(name).ConfigureAwait(false);
        }

        var connections = _connections.Keys.ToArray();
        foreach (var connection in connections)
        {
            connection.Abort("server shutting down");
        }

        await Task.WhenAll(connections.Select(c => c.Completion)).ConfigureAwait(false);
        _workers.Dispose();
        _buffers.Dispose();
    }

    internal void StartConnection(Socket socket, string peer)
    {
        if (_disposed || _connections.Count >= _options.MaxConnections)
        {
            NbdLog.TooManyConnections(_logger, peer, _connections.Count);
            socket.Dispose();
            return;
        }

        var connection = new NbdConnection(socket, this, _workers, _buffers, _options, _logger, peer);
        _connections.TryAdd(connection, 0);
        long id = Interlocked.Increment(ref _connectionSequence);
        var thread = new Thread(() =>
        {
            connection.Run();
            _connections.TryRemove(connection, out _);
        }, maxStackSize: 256 * 1024)
        {
            IsBackground = true,
            Name = $"nbd-conn-{id}",
        };
        thread.Start();
    }

    private NbdListener AddListener(NbdListener listener)
    {
        lock (_listeners)
        {
            _listeners.Add(listener);
        }

        return listener;
    }

    private static bool IsSocketFile(string path)
    {
        // open(2) of a unix socket fails with ENXIO; anything that opens is a file we must not delete.
        try
        {
            File.OpenHandle(path, FileMode.Open, FileAccess.Read).Dispose();
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static bool IsStaleSocket(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return false; // someone is serving there
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
