using System.Diagnostics;
using System.Text.Json;
using Vmk.Vmkernel.Qemu.Qmp;

namespace Vmk.Vmkernel.Tests.Qemu.Qmp;

/// <summary>
/// The QMP client against a scripted peer (see <see cref="FakeQmpServer"/> for why a fake is used here): replies out
/// of order, malformed lines, interleaved events, a peer that hangs up or never answers, garbage greetings.
/// </summary>
public sealed class QmpClientProtocolTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly FakeQmpServer _server = new();
    private readonly CapturingLogger _log = new();
    private QmpClient? _client;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    private async Task<QmpClient> ConnectAsync()
    {
        var connecting = QmpClient.ConnectAsync(_server.SocketPath, Deadline, _log);
        await _server.AcceptAndHandshakeAsync();
        _client = await connecting.WaitAsync(Deadline);
        return _client;
    }

    private static string Answer(JsonElement result) => result.GetProperty("answer").GetString()!;

    [Fact]
    public async Task Greeting_version_is_exposed()
    {
        var client = await ConnectAsync();

        Assert.Equal("7.2.18", client.QemuVersion);
    }

    [Fact]
    public async Task Out_of_order_replies_reach_the_command_that_asked()
    {
        var client = await ConnectAsync();
        var first = client.ExecuteAsync("cmd-first");
        var second = client.ExecuteAsync("cmd-second");
        var third = client.ExecuteAsync("cmd-third");
        var received = new[] { await _server.ReadCommandAsync(), await _server.ReadCommandAsync(), await _server.ReadCommandAsync() };

        foreach (var command in received.Reverse())
        {
            await _server.ReplyAsync(command, $$"""{"answer": "{{command.Execute}}"}""");
        }

        Assert.Equal("cmd-first", Answer(await first.WaitAsync(Deadline)));
        Assert.Equal("cmd-second", Answer(await second.WaitAsync(Deadline)));
        Assert.Equal("cmd-third", Answer(await third.WaitAsync(Deadline)));
        Assert.Equal(3, received.Select(c => c.Id.GetRawText()).Distinct().Count());
    }

    [Fact]
    public async Task Malformed_lines_are_logged_and_skipped_and_the_client_keeps_working()
    {
        var client = await ConnectAsync();
        var pending = client.ExecuteAsync("query-thing");
        var command = await _server.ReadCommandAsync();

        string[] garbage =
        [
            "this is not json",
            "[1, 2, 3]",
            """{"unrelated": true}""",
            """{"return": {"answer": "trunc""",
            """{"event": 42}""",
            "\u0001\u0002binary\u00ff",
        ];
        foreach (string line in garbage)
        {
            await _server.SendAsync(line);
        }

        await _server.SendAsync("""{"return": {"answer": "for someone else"}, "id": "not-ours"}""");
        await _server.SendAsync("""{"error": {"class": "GenericError", "desc": "JSON parse error"}}""");
        await _server.SendAsync("");
        await _server.ReplyAsync(command, """{"answer": "real"}""");

        Assert.Equal("real", Answer(await pending.WaitAsync(Deadline)));
        Assert.Equal(garbage.Length, _log.CountWarningsContaining("malformed line"));
        Assert.Equal(2, _log.CountWarningsContaining("unknown id"));
        Assert.False(client.Closed.IsCompleted);

        var next = client.ExecuteAsync("query-next");
        await _server.ReplyAsync(await _server.ReadCommandAsync(), """{"answer": "next"}""");
        Assert.Equal("next", Answer(await next.WaitAsync(Deadline)));
    }

    [Fact]
    public async Task A_line_split_across_many_writes_is_reassembled()
    {
        var client = await ConnectAsync();
        var pending = client.ExecuteAsync("query-split");
        var command = await _server.ReadCommandAsync();

        byte[] reply = System.Text.Encoding.UTF8.GetBytes($$"""{"return": {"answer": "whole"}, "id": {{command.Id.GetRawText()}}}""" + "\r\n");
        foreach (byte b in reply)
        {
            await _server.SendRawAsync([b]);
        }

        Assert.Equal("whole", Answer(await pending.WaitAsync(Deadline)));
    }

    [Fact]
    public async Task Events_interleaved_with_replies_arrive_in_order_and_before_the_reply_that_follows_them()
    {
        var client = await ConnectAsync();
        var a = client.ExecuteAsync("cmd-a");
        var b = client.ExecuteAsync("cmd-b");
        var commandA = await _server.ReadCommandAsync();
        var commandB = await _server.ReadCommandAsync();

        await _server.SendAsync("""{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "STOP"}""");
        await _server.ReplyAsync(commandB, """{"answer": "b"}""");
        await _server.SendAsync("""{"timestamp": {"seconds": 1700000001, "microseconds": 0}, "event": "RESUME"}""");
        await _server.ReplyAsync(commandA, """{"answer": "a"}""");
        await _server.SendAsync("""{"timestamp": {"seconds": 1700000002, "microseconds": 5}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}""");

        Assert.Equal("b", Answer(await b.WaitAsync(Deadline)));
        // The STOP that QEMU sent before b's reply must already be readable when b completes.
        Assert.True(client.Events.TryRead(out var stop));
        Assert.Equal("STOP", stop.Name);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000).AddMilliseconds(250), stop.Timestamp);
        Assert.Equal(JsonValueKind.Object, stop.Data.ValueKind);

        Assert.Equal("a", Answer(await a.WaitAsync(Deadline)));
        var resume = await client.Events.ReadAsync().AsTask().WaitAsync(Deadline);
        Assert.Equal("RESUME", resume.Name);
        var shutdown = await client.Events.ReadAsync().AsTask().WaitAsync(Deadline);
        Assert.Equal("SHUTDOWN", shutdown.Name);
        Assert.Equal("guest-shutdown", shutdown.Data.GetProperty("reason").GetString());
        Assert.True(shutdown.Data.GetProperty("guest").GetBoolean());
    }

    [Fact]
    public async Task Error_reply_becomes_a_command_exception_naming_class_and_description()
    {
        var client = await ConnectAsync();
        var pending = client.ExecuteAsync("device_del", new { id = "disk9" });
        var command = await _server.ReadCommandAsync();
        await _server.SendAsync($$$"""{"id": {{{command.Id.GetRawText()}}}, "error": {"class": "DeviceNotFound", "desc": "Device 'disk9' not found"}}""");

        var error = await Assert.ThrowsAsync<QmpCommandException>(() => pending.WaitAsync(Deadline));
        Assert.Equal("DeviceNotFound", error.ErrorClass);
        Assert.Equal("device_del", error.Command);
        Assert.Equal("Device 'disk9' not found", error.Description);
        Assert.Contains("Device 'disk9' not found", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Arguments_keep_their_exact_names_and_null_properties_are_omitted_but_dictionary_nulls_are_sent()
    {
        var client = await ConnectAsync();
        var parameters = new Dictionary<string, object?> { ["downtime-limit"] = 300, ["tls-creds"] = null };
        var setParameters = client.ExecuteAsync("migrate-set-parameters", parameters);
        var received = await _server.ReadCommandAsync();
        await _server.ReplyAsync(received, "{}");
        await setParameters.WaitAsync(Deadline);

        Assert.Equal("""{"downtime-limit":300,"tls-creds":null}""", received.Arguments!.Value.GetRawText());

        var migrate = client.ExecuteAsync("migrate", new { uri = "tcp:10.0.0.2:4444", detach = (bool?)null });
        var receivedMigrate = await _server.ReadCommandAsync();
        await _server.ReplyAsync(receivedMigrate, "{}");
        await migrate.WaitAsync(Deadline);

        Assert.Equal("""{"uri":"tcp:10.0.0.2:4444"}""", receivedMigrate.Arguments!.Value.GetRawText());
        Assert.Null((await ReadWithoutArgumentsAsync(client)).Arguments);
    }

    private async Task<ReceivedCommand> ReadWithoutArgumentsAsync(QmpClient client)
    {
        var status = client.ExecuteAsync("query-status");
        var received = await _server.ReadCommandAsync();
        await _server.ReplyAsync(received, """{"status": "running", "running": true}""");
        await status.WaitAsync(Deadline);
        return received;
    }

    [Fact]
    public async Task Server_closing_mid_command_fails_the_command_completes_closed_and_ends_events()
    {
        var client = await ConnectAsync();
        var pending = client.ExecuteAsync("query-status");
        await _server.ReadCommandAsync();
        await _server.SendAsync("""{"timestamp": {"seconds": 1700000000, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": false}}""");
        _server.CloseConnection();

        var error = await Assert.ThrowsAsync<QmpConnectionClosedException>(() => pending.WaitAsync(Deadline));
        Assert.Contains("query-status", error.Message, StringComparison.Ordinal);
        await client.Closed.WaitAsync(Deadline);

        var events = new List<string>();
        await foreach (var e in client.Events.ReadAllAsync().WithCancellation(new CancellationTokenSource(Deadline).Token))
        {
            events.Add(e.Name);
        }

        Assert.Equal(["SHUTDOWN"], events);
        await Assert.ThrowsAsync<QmpConnectionClosedException>(() => client.ExecuteAsync("query-status"));
    }

    [Fact]
    public async Task A_command_without_reply_times_out_and_the_next_command_still_works()
    {
        var client = await ConnectAsync();
        var timeout = TimeSpan.FromMilliseconds(300);
        var stopwatch = Stopwatch.StartNew();
        var slow = client.ExecuteAsync("query-slow", timeout: timeout);
        var unanswered = await _server.ReadCommandAsync();

        var error = await Assert.ThrowsAsync<QmpTimeoutException>(() => slow.WaitAsync(Deadline));
        Assert.True(stopwatch.Elapsed >= timeout * 0.9, $"timed out after {stopwatch.Elapsed}, before the {timeout} asked for");
        Assert.Equal("query-slow", error.Command);

        // The late reply to the timed-out command must not be taken for the next command's reply.
        var next = client.ExecuteAsync("query-next");
        var nextCommand = await _server.ReadCommandAsync();
        await _server.ReplyAsync(unanswered, """{"answer": "late"}""");
        await _server.ReplyAsync(nextCommand, """{"answer": "next"}""");

        Assert.Equal("next", Answer(await next.WaitAsync(Deadline)));
        Assert.Equal(1, _log.CountWarningsContaining("unknown id"));
        Assert.False(client.Closed.IsCompleted);
    }

    [Fact]
    public async Task Caller_cancellation_is_a_cancellation_not_a_timeout()
    {
        var client = await ConnectAsync();
        using var cts = new CancellationTokenSource();
        var pending = client.ExecuteAsync("query-slow", ct: cts.Token);
        await _server.ReadCommandAsync();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.WaitAsync(Deadline));
        Assert.False(client.Closed.IsCompleted);
    }

    [Fact]
    public async Task Disposing_with_a_command_in_flight_fails_it_as_closed()
    {
        var client = await ConnectAsync();
        var pending = client.ExecuteAsync("query-status");
        await _server.ReadCommandAsync();

        await client.DisposeAsync().AsTask().WaitAsync(Deadline);

        var error = await Assert.ThrowsAsync<QmpConnectionClosedException>(() => pending.WaitAsync(Deadline));
        Assert.Contains("disposed", error.Message, StringComparison.Ordinal);
        Assert.True(client.Closed.IsCompletedSuccessfully);
        await client.DisposeAsync(); // twice is harmless
    }

    [Fact]
    public async Task A_full_event_queue_drops_the_oldest_events_and_never_stalls_replies()
    {
        var client = await ConnectAsync();
        const int overflow = 10;
        var pending = client.ExecuteAsync("query-after-flood");
        var command = await _server.ReadCommandAsync();
        var flood = new System.Text.StringBuilder();
        for (int i = 0; i < QmpClient.EventQueueCapacity + overflow; i++)
        {
            flood.Append($$$"""{"timestamp": {"seconds": 1700000000, "microseconds": 0}, "event": "EV", "data": {"n": {{{i}}}}}""").Append("\r\n");
        }

        await _server.SendRawAsync(System.Text.Encoding.UTF8.GetBytes(flood.ToString()));
        await _server.ReplyAsync(command, """{"answer": "after"}""");

        Assert.Equal("after", Answer(await pending.WaitAsync(Deadline)));
        Assert.Equal(overflow, client.DroppedEventCount);
        Assert.True(client.Events.TryRead(out var oldestKept));
        Assert.Equal(overflow, oldestKept.Data.GetProperty("n").GetInt32());
    }

    [Theory]
    [InlineData("SSH-2.0-OpenSSH_9.2p1 Debian-2")]
    [InlineData("QEMU 7.2.18 monitor - type 'help' for more information")]
    [InlineData("""{"hello": "world"}""")]
    [InlineData("""{"QMP": {"capabilities": []}}""")]
    [InlineData("""{"QMP": {"version": {"qemu": {"major": "seven"}}}}""")]
    public async Task A_garbage_greeting_is_a_clear_error(string greeting)
    {
        var connecting = QmpClient.ConnectAsync(_server.SocketPath, Deadline, _log);
        await _server.AcceptAsync();
        await _server.SendAsync(greeting);

        var error = await Assert.ThrowsAsync<QmpException>(() => connecting.WaitAsync(Deadline));
        Assert.Contains("did not send a QMP greeting", error.Message, StringComparison.Ordinal);
        Assert.Contains(_server.SocketPath, error.Message, StringComparison.Ordinal);
        Assert.Contains(greeting[..10], error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_hangs_up_before_greeting_is_a_clear_error()
    {
        var connecting = QmpClient.ConnectAsync(_server.SocketPath, Deadline, _log);
        await _server.AcceptAsync();
        _server.CloseConnection();

        var error = await Assert.ThrowsAsync<QmpException>(() => connecting.WaitAsync(Deadline));
        Assert.Contains("before sending a greeting", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_peer_that_never_greets_is_a_clear_error_after_the_timeout()
    {
        var connecting = QmpClient.ConnectAsync(_server.SocketPath, TimeSpan.FromMilliseconds(100), _log);
        await _server.AcceptAsync();

        var error = await Assert.ThrowsAsync<QmpException>(() => connecting.WaitAsync(Deadline));
        Assert.Contains("sent no greeting", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_capabilities_negotiation_is_a_clear_error()
    {
        var connecting = QmpClient.ConnectAsync(_server.SocketPath, Deadline, _log);
        await _server.AcceptAsync();
        await _server.SendAsync(FakeQmpServer.Greeting);
        var negotiate = await _server.ReadCommandAsync();
        await _server.SendAsync($$$"""{"id": {{{negotiate.Id.GetRawText()}}}, "error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}""");

        var error = await Assert.ThrowsAsync<QmpException>(() => connecting.WaitAsync(Deadline));
        Assert.Contains("capabilities negotiation failed", error.Message, StringComparison.Ordinal);
        Assert.Contains("already complete", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_socket_that_never_appears_is_a_clear_error_after_the_connect_timeout()
    {
        string missing = Path.Combine(Path.GetDirectoryName(_server.SocketPath)!, "never-created.sock");

        var error = await Assert.ThrowsAsync<QmpException>(
            () => QmpClient.ConnectAsync(missing, TimeSpan.FromMilliseconds(200), _log).WaitAsync(Deadline));
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
        Assert.Contains("-qmp unix:", error.Message, StringComparison.Ordinal);
    }
}
