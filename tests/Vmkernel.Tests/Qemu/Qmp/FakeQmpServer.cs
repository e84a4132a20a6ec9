using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Vmk.Vmkernel.Tests.Qemu.Qmp;

/// <summary>
/// A scripted QMP peer on a real unix socket. This is the one place a fake is right: a real QEMU never sends
/// malformed lines, out-of-order replies, or a garbage greeting, so only a scripted peer can test the client's
/// handling of them. Everything a real QEMU can do is tested against a real QEMU in <see cref="QmpClientQemuTests"/>.
/// </summary>
internal sealed class FakeQmpServer : IAsyncDisposable
{
    public const string Greeting =
        """{"QMP": {"version": {"qemu": {"micro": 18, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}""";

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly string _directory;
    private readonly Socket _listener;
    private Socket? _connection;
    private NetworkStream? _stream;
    private StreamReader? _reader;

    public FakeQmpServer()
    {
        _directory = Path.Combine(Path.GetTempPath(), "vmk-fakeqmp-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_directory);
        SocketPath = Path.Combine(_directory, "qmp.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(1);
    }

    public string SocketPath { get; }

    public async Task AcceptAsync()
    {
        _connection = await _listener.AcceptAsync().WaitAsync(Deadline);
        _stream = new NetworkStream(_connection, ownsSocket: true);
        _reader = new StreamReader(_stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, leaveOpen: true);
    }

    /// <summary>Accepts the client, greets it and answers its qmp_capabilities, as QEMU does.</summary>
    public async Task AcceptAndHandshakeAsync()
    {
        await AcceptAsync();
        await SendAsync(Greeting);
        var negotiate = await ReadCommandAsync();
        Assert.Equal("qmp_capabilities", negotiate.Execute);
        await ReplyAsync(negotiate, "{}");
    }

    /// <summary>Sends raw text as one line, with QEMU's CRLF terminator.</summary>
    public Task SendAsync(string line) => SendRawAsync(Encoding.UTF8.GetBytes(line + "\r\n"));

    public async Task SendRawAsync(byte[] bytes)
    {
        await _stream!.WriteAsync(bytes).AsTask().WaitAsync(Deadline);
    }

    public Task ReplyAsync(ReceivedCommand command, string returnJson) =>
        SendAsync($$"""{"return": {{returnJson}}, "id": {{command.Id.GetRawText()}}}""");

    public async Task<ReceivedCommand> ReadCommandAsync()
    {
        string? line = await _reader!.ReadLineAsync().WaitAsync(Deadline);
        Assert.NotNull(line);
        using var document = JsonDocument.Parse(line);
        var root = document.RootElement;
        return new ReceivedCommand(
            root.GetProperty("execute").GetString()!,
            root.GetProperty("id").Clone(),
            root.TryGetProperty("arguments", out var arguments) ? arguments.Clone() : null,
            line);
    }

    public void CloseConnection()
    {
        _reader?.Dispose();
        _stream?.Dispose();
        _connection?.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        CloseConnection();
        _listener.Dispose();
        Directory.Delete(_directory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
