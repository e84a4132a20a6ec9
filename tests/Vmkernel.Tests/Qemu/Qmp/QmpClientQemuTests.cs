using System.Text.Json;
using Vmk.Vmkernel.Qemu.Qmp;

namespace Vmk.Vmkernel.Tests.Qemu.Qmp;

/// <summary>The QMP client against a real QEMU (TCG, no guest: -S keeps the machine in prelaunch until `cont`).</summary>
[Collection("qemu")]
public sealed class QmpClientQemuTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private readonly QmpTestQemu _qemu = new();
    private readonly CapturingLogger _log = new();
    private QmpClient? _client;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        await _qemu.DisposeAsync();
    }

    private async Task<QmpClient> StartAndConnectAsync()
    {
        _qemu.Start();
        try
        {
            _client = await QmpClient.ConnectAsync(_qemu.SocketPath, Deadline, _log);
        }
        catch (QmpException e)
        {
            throw new InvalidOperationException($"{e.Message}\nQEMU stderr:\n{_qemu.Stderr}", e);
        }

        return _client;
    }

    private async Task<QmpEvent> NextEventAsync(QmpClient client) =>
        await client.Events.ReadAsync().AsTask().WaitAsync(Deadline);

    [Fact]
    public async Task Connect_waits_for_the_socket_QEMU_creates_later_and_reports_its_version()
    {
        var connecting = QmpClient.ConnectAsync(_qemu.SocketPath, Deadline, _log);
        Assert.False(File.Exists(_qemu.SocketPath));
        _qemu.Start();
        _client = await connecting.WaitAsync(Deadline);

        Assert.Equal(QmpTestQemu.InstalledVersion(), _client.QemuVersion);
        Assert.Equal("prelaunch", await _client.QueryStatusAsync());
    }

    [Fact]
    public async Task Stop_and_cont_change_the_status_and_produce_STOP_and_RESUME_in_order()
    {
        var client = await StartAndConnectAsync();
        var before = DateTimeOffset.UtcNow.AddSeconds(-5);

        await client.ExecuteAsync("cont");
        Assert.Equal("running", await client.QueryStatusAsync());
        await client.ExecuteAsync("stop");
        Assert.Equal("paused", await client.QueryStatusAsync());
        await client.ExecuteAsync("cont");
        Assert.Equal("running", await client.QueryStatusAsync());

        var events = new[] { await NextEventAsync(client), await NextEventAsync(client), await NextEventAsync(client) };
        Assert.Equal(["RESUME", "STOP", "RESUME"], events.Select(e => e.Name));
        Assert.All(events, e => Assert.InRange(e.Timestamp, before, DateTimeOffset.UtcNow.AddSeconds(5)));
        Assert.True(events[0].Timestamp <= events[1].Timestamp && events[1].Timestamp <= events[2].Timestamp);
    }

    [Fact]
    public async Task Unknown_command_is_CommandNotFound_and_the_connection_stays_usable()
    {
        var client = await StartAndConnectAsync();

        var error = await Assert.ThrowsAsync<QmpCommandException>(() => client.ExecuteAsync("no-such-command"));
        Assert.Equal("CommandNotFound", error.ErrorClass);
        Assert.Equal("no-such-command", error.Command);
        Assert.Equal("prelaunch", await client.QueryStatusAsync());
    }

    [Fact]
    public async Task Bad_arguments_are_reported_by_QEMU_as_a_command_error()
    {
        var client = await StartAndConnectAsync();

        var error = await Assert.ThrowsAsync<QmpCommandException>(
            () => client.ExecuteAsync("qom-get", new Dictionary<string, object?> { ["path"] = "/machine", ["property"] = "no-such-property" }));
        Assert.Equal("GenericError", error.ErrorClass);
        Assert.Contains("no-such-property", error.Description, StringComparison.Ordinal);

        var type = await client.ExecuteAsync("qom-get", new { path = "/machine", property = "type" });
        Assert.Equal("microvm-machine", type.GetString());
    }

    [Fact]
    public async Task Concurrent_commands_from_many_tasks_each_get_their_own_reply()
    {
        var client = await StartAndConnectAsync();
        string[] commands = ["query-status", "query-version", "query-name", "query-kvm"];

        var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            for (int i = 0; i < 25; i++)
            {
                string command = commands[(worker + i) % commands.Length];
                var result = await client.ExecuteAsync(command);
                // Each command's reply has a shape no other one has: a mixed-up match would show here.
                switch (command)
                {
                    case "query-status": Assert.Equal("prelaunch", result.GetProperty("status").GetString()); break;
                    case "query-version": Assert.Equal(JsonValueKind.Number, result.GetProperty("qemu").GetProperty("major").ValueKind); break;
                    case "query-name": Assert.False(result.TryGetProperty("status", out _)); break;
                    case "query-kvm": Assert.False(result.GetProperty("enabled").GetBoolean()); break;
                }
            }
        }));

        await Task.WhenAll(workers).WaitAsync(Deadline * 2);
        Assert.DoesNotContain(_log.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning);
    }

    [Fact]
    public async Task Quit_closes_the_connection_and_a_following_command_fails_as_closed()
    {
        var client = await StartAndConnectAsync();

        try
        {
            await client.ExecuteAsync("quit");
        }
        catch (QmpConnectionClosedException)
        {
            // QEMU may exit before its reply to quit is read; either way the connection is gone next.
        }

        await client.Closed.WaitAsync(Deadline);
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => client.QueryStatusAsync());
        await _qemu.Process.WaitForExitAsync().WaitAsync(Deadline);

        var events = new List<QmpEvent>();
        await foreach (var e in client.Events.ReadAllAsync().WithCancellation(new CancellationTokenSource(Deadline).Token))
        {
            events.Add(e);
        }

        var shutdown = Assert.Single(events);
        Assert.Equal("SHUTDOWN", shutdown.Name);
        Assert.Equal("host-qmp-quit", shutdown.Data.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Killing_QEMU_mid_command_fails_the_command_as_closed_promptly()
    {
        var client = await StartAndConnectAsync();
        await _qemu.FreezeAsync(Deadline);
        var inFlight = client.QueryStatusAsync(timeout: TimeSpan.FromMinutes(5));
        Assert.False(inFlight.IsCompleted); // a frozen QEMU cannot have answered

        _qemu.Process.Kill();

        // Well before the command's own 5-minute timeout: the closed socket must end the wait.
        var error = await Assert.ThrowsAsync<QmpConnectionClosedException>(() => inFlight.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("query-status", error.Message, StringComparison.Ordinal);
        await client.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => client.ExecuteAsync("cont"));
    }
}
