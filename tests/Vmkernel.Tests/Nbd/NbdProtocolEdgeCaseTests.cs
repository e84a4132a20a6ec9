using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>
/// Bad input over a raw socket: each case gets the reply the protocol prescribes (or a clean close), is logged once,
/// and the server goes on serving other clients. Error numbers are the protocol's (EPERM 1, EINVAL 22, ENOSPC 28).
/// </summary>
public sealed class NbdProtocolEdgeCaseTests : IAsyncLifetime
{
    private const ushort Read = 0, Write = 1, Disc = 2, Flush = 3, Trim = 4, WriteZeroes = 6, BlockStatus = 7;
    private const uint RepAck = 1, RepServer = 2, RepErrUnsup = 0x80000001, RepErrInvalid = 0x80000003, RepErrUnknown = 0x80000006;
    private const uint EPerm = 1, EInval = 22, ENoSpc = 28;
    private const int ExportSize = 4 << 20;

    private readonly NbdTestServer _nbd = new();
    private string _diskPath = "";
    private byte[] _original = [];

    public async Task InitializeAsync()
    {
        _diskPath = _nbd.AddRandomExport("disk", ExportSize);
        _nbd.AddRandomExport("base", 1 << 20, readOnly: true);
        _original = await File.ReadAllBytesAsync(_diskPath);
    }

    public async Task DisposeAsync() => await _nbd.DisposeAsync();

    [Fact]
    public async Task Bad_option_magic_closes_that_connection_is_logged_once_and_others_are_still_served()
    {
        using var bad = RawNbdClient.Connect(_nbd.SocketPath);
        bad.SendOption(7, RawNbdClient.InfoRequestData("disk"), magic: 0x0123456789abcdef);

        Assert.True(bad.ServerClosed());
        await ServerStillServesAsync();
        await _nbd.Logs.WaitForAsync(e => e.Message.Contains("bad option magic", StringComparison.Ordinal), "bad option magic");
        Assert.Single(_nbd.Logs.Entries, e => e.Message.Contains("bad option magic", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_client_flags_close_the_connection()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath, clientFlags: 0x80);

        Assert.True(client.ServerClosed());
    }

    [Fact]
    public async Task An_unknown_option_is_answered_unsupported_and_negotiation_goes_on()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.SendOption(0x4242, Encoding.ASCII.GetBytes("whatever"));
        var reply = client.ReadOptionReply();
        client.SendOption(5, []); // STARTTLS: this server runs without TLS
        var tls = client.ReadOptionReply();
        var (size, _) = client.Go("disk");

        Assert.Equal((0x4242u, RepErrUnsup), (reply.Option, reply.Type));
        Assert.Equal(RepErrUnsup, tls.Type);
        Assert.Equal((ulong)ExportSize, size);
        await _nbd.Logs.WaitForAsync(e => e.Message.Contains("option 16962", StringComparison.Ordinal), "unsupported option log");
    }

    [Fact]
    public void Go_to_an_unknown_export_is_refused_with_a_message_and_the_client_may_try_again()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.SendOption(7, RawNbdClient.InfoRequestData("no-such-disk"));
        var refused = client.ReadOptionReply();
        client.SendOption(3, []);
        var names = new List<string>();
        OptionReply entry;
        while ((entry = client.ReadOptionReply()).Type == RepServer)
        {
            names.Add(Encoding.UTF8.GetString(entry.Data.AsSpan(4, (int)BinaryPrimitives.ReadUInt32BigEndian(entry.Data))));
        }

        Assert.Equal(RepErrUnknown, refused.Type);
        Assert.Contains("no-such-disk", Encoding.UTF8.GetString(refused.Data), StringComparison.Ordinal);
        Assert.Equal(RepAck, entry.Type);
        Assert.Equal(["base", "disk"], names.Order());
        Assert.Single(_nbd.Logs.Entries, e => e.Message.Contains("'no-such-disk'", StringComparison.Ordinal));
    }

    [Fact]
    public void Export_name_of_an_unknown_export_closes_the_connection_as_the_protocol_prescribes()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.SendOption(1, Encoding.UTF8.GetBytes("no-such-disk"));

        Assert.True(client.ServerClosed());
    }

    [Fact]
    public void Export_name_of_a_known_export_enters_transmission_without_the_zero_padding_when_asked()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.SendOption(1, Encoding.UTF8.GetBytes("disk"));
        var reply = client.Receive(10);
        client.SendRequest(Read, 5, 0, 8);
        var (error, handle) = client.ReadSimpleReply();

        Assert.Equal((ulong)ExportSize, BinaryPrimitives.ReadUInt64BigEndian(reply));
        Assert.Equal((0u, 5ul), (error, handle));
        Assert.Equal(_original.AsSpan(0, 8).ToArray(), client.Receive(8));
    }

    [Fact]
    public void Abort_is_acknowledged_and_the_connection_closed()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.SendOption(2, []);

        Assert.Equal(RepAck, client.ReadOptionReply().Type);
        Assert.True(client.ServerClosed());
    }

    [Fact]
    public void Metadata_contexts_need_structured_replies_first()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.SendOption(10, [0, 0, 0, 0, 0, 0, 0, 0]);

        Assert.Equal(RepErrInvalid, client.ReadOptionReply().Type);
    }

    [Fact]
    public void Requests_beyond_the_end_get_einval_or_enospc_and_the_connection_goes_on()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.Go("disk");
        client.SendRequest(Read, 1, ExportSize - 512, 1024);
        var readPastEnd = client.ReadSimpleReply();
        client.SendRequest(Read, 2, ulong.MaxValue - 100, 4096); // offset + length overflows 64 bits
        var readWrapped = client.ReadSimpleReply();
        client.SendRequest(Write, 3, ExportSize - 100, 200, payload: new byte[200]);
        var writePastEnd = client.ReadSimpleReply();
        client.SendRequest(WriteZeroes, 4, ExportSize, 1);
        var zeroPastEnd = client.ReadSimpleReply();
        client.SendRequest(Trim, 5, ExportSize + 4096L, 4096);
        var trimPastEnd = client.ReadSimpleReply();
        client.SendRequest(Read, 6, ExportSize - 512, 512);
        var lastSector = client.ReadSimpleReply();
        var data = client.Receive(512);

        Assert.Equal((EInval, 1ul), readPastEnd);
        Assert.Equal((EInval, 2ul), readWrapped);
        Assert.Equal((ENoSpc, 3ul), writePastEnd);
        Assert.Equal((ENoSpc, 4ul), zeroPastEnd);
        Assert.Equal((EInval, 5ul), trimPastEnd);
        Assert.Equal((0u, 6ul), lastSector);
        Assert.Equal(_original.AsSpan(ExportSize - 512).ToArray(), data);
        Assert.Equal(_original, File.ReadAllBytes(_diskPath));
    }

    [Fact]
    public void An_oversized_read_is_refused_and_an_oversized_write_closes_the_connection()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.Go("disk");
        client.SendRequest(Read, 1, 0, (32u << 20) + 1);
        var read = client.ReadSimpleReply();
        client.SendRequest(Write, 2, 0, 64u << 20); // header only: the server must not wait for 64 MiB

        Assert.Equal((EInval, 1ul), read);
        Assert.True(client.ServerClosed());
        Assert.Equal(_original, File.ReadAllBytes(_diskPath));
    }

    [Fact]
    public void Unknown_commands_and_flags_get_einval_and_the_connection_goes_on()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.Go("disk");
        client.SendRequest(42, 1, 0, 4096);
        var unknown = client.ReadSimpleReply();
        client.SendRequest(Read, 2, 0, 4096, flags: 0x100);
        var badFlag = client.ReadSimpleReply();
        client.SendRequest(Flush, 3, 4096, 0);
        var flushWithOffset = client.ReadSimpleReply();
        client.SendRequest(BlockStatus, 4, 0, 4096); // no metadata context negotiated
        var blockStatus = client.ReadSimpleReply();
        client.SendRequest(Flush, 5, 0, 0);
        var flush = client.ReadSimpleReply();

        Assert.Equal((EInval, 1ul), unknown);
        Assert.Equal((EInval, 2ul), badFlag);
        Assert.Equal((EInval, 3ul), flushWithOffset);
        Assert.Equal((EInval, 4ul), blockStatus);
        Assert.Equal((0u, 5ul), flush);
    }

    [Fact]
    public void A_read_only_export_answers_writes_trims_and_zeroing_with_eperm()
    {
        var basePath = Path.Combine(_nbd.Directory, "base.img");
        var before = File.ReadAllBytes(basePath);
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        var (_, flags) = client.Go("base");
        client.SendRequest(Write, 1, 0, 4096, payload: new byte[4096]);
        var write = client.ReadSimpleReply();
        client.SendRequest(Write, 2, 0, 200_000, payload: new byte[200_000]); // large: payload streamed and skipped
        var largeWrite = client.ReadSimpleReply();
        client.SendRequest(Trim, 3, 0, 4096);
        var trim = client.ReadSimpleReply();
        client.SendRequest(WriteZeroes, 4, 0, 4096);
        var zero = client.ReadSimpleReply();
        client.SendRequest(Read, 5, 0, 16);
        var read = client.ReadSimpleReply();

        Assert.NotEqual(0, flags & 2); // NBD_FLAG_READ_ONLY
        Assert.Equal(0, flags & (1 << 5)); // no NBD_FLAG_SEND_TRIM
        Assert.Equal((EPerm, 1ul), write);
        Assert.Equal((EPerm, 2ul), largeWrite);
        Assert.Equal((EPerm, 3ul), trim);
        Assert.Equal((EPerm, 4ul), zero);
        Assert.Equal((0u, 5ul), read);
        Assert.Equal(before.AsSpan(0, 16).ToArray(), client.Receive(16));
        Assert.Equal(before, File.ReadAllBytes(basePath));
    }

    [Fact]
    public async Task A_client_vanishing_mid_write_is_logged_writes_nothing_and_others_are_still_served()
    {
        using (var client = RawNbdClient.Connect(_nbd.SocketPath))
        {
            client.Go("disk");
            var frame = new byte[28 + 300_000];
            BinaryPrimitives.WriteUInt32BigEndian(frame, RawNbdClient.RequestMagic);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(6), Write);
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(24), 1_000_000);
            client.Send(frame); // a 1 MB write of which only 300 kB arrive
        }

        await _nbd.Logs.WaitForAsync(e => e.Message.Contains("in the middle of a write", StringComparison.Ordinal), "mid-write disconnect");
        await ServerStillServesAsync();
        Assert.Equal(_original, await File.ReadAllBytesAsync(_diskPath));
    }

    [Fact]
    public async Task A_client_vanishing_mid_header_is_logged()
    {
        using (var client = RawNbdClient.Connect(_nbd.SocketPath))
        {
            client.Go("disk");
            client.Send([0x25, 0x60, 0x95, 0x13, 0, 0, 0, 0, 0, 0]);
        }

        var entry = await _nbd.Logs.WaitForAsync(e => e.Message.Contains("in the middle of a request", StringComparison.Ordinal), "mid-request disconnect");
        Assert.Equal(LogLevel.Information, entry.Level);
        await ServerStillServesAsync();
    }

    [Fact]
    public void Bad_request_magic_closes_the_connection()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.Go("disk");
        client.SendRequest(Read, 1, 0, 512, magic: 0xdeadbeef);

        Assert.True(client.ServerClosed());
    }

    [Fact]
    public void Structured_replies_carry_reads_errors_with_messages_and_block_status()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        var (_, flags) = client.Go("disk", structured: true, baseAllocation: true);
        client.SendRequest(Read, 1, 4096, 100);
        var data = client.ReadStructuredChunk();
        client.SendRequest(Read, 2, ExportSize, 1);
        var error = client.ReadStructuredChunk();
        client.SendRequest(BlockStatus, 3, 0, ExportSize, flags: 8); // REQ_ONE
        var status = client.ReadStructuredChunk();
        client.SendRequest(Write, 4, 8192, 4, payload: [1, 2, 3, 4]);
        var written = client.ReadStructuredChunk();

        Assert.NotEqual(0, flags & (1 << 7)); // NBD_FLAG_SEND_DF once structured replies are on
        Assert.Equal((1, 1, 1ul), (data.Flags, data.Type, data.Handle)); // DONE, OFFSET_DATA
        Assert.Equal(4096ul, BinaryPrimitives.ReadUInt64BigEndian(data.Payload));
        Assert.Equal(_original.AsSpan(4096, 100).ToArray(), data.Payload[8..]);
        Assert.Equal((1, 0x8001, 2ul), (error.Flags, error.Type, error.Handle)); // DONE, ERROR
        Assert.Equal(EInval, error.ErrorCode);
        Assert.Contains("beyond the end", error.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal((1, 5, 3ul), (status.Flags, status.Type, status.Handle)); // DONE, BLOCK_STATUS
        Assert.Equal(12, status.Payload.Length); // context id + exactly one descriptor
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(status.Payload));
        Assert.Equal((uint)ExportSize, BinaryPrimitives.ReadUInt32BigEndian(status.Payload.AsSpan(4)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(status.Payload.AsSpan(8))); // data, not hole
        Assert.Equal((1, 0, 4ul), (written.Flags, written.Type, written.Handle)); // DONE, NONE
    }

    [Fact]
    public void Many_requests_in_flight_are_all_answered_with_their_own_handles_and_data()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.Go("disk");
        var sizes = new[] { 512, 4096, 65536, 65537, 1 << 20 };
        const int count = 100;
        for (int i = 0; i < count; i++)
        {
            client.SendRequest(Read, (ulong)(1000 + i), (ulong)(i * 4096), (uint)sizes[i % sizes.Length]);
        }

        client.SendRequest(Write, 5000, 0, 4, flags: 1, payload: [9, 9, 9, 9]); // FUA
        var seen = new HashSet<ulong>();
        for (int i = 0; i <= count; i++)
        {
            var (error, handle) = client.ReadSimpleReply();
            Assert.Equal(0u, error);
            if (handle == 5000)
            {
                seen.Add(handle);
                continue;
            }

            int index = (int)handle - 1000;
            int length = sizes[index % sizes.Length];
            Assert.Equal(_original.AsSpan(index * 4096, length).ToArray(), client.Receive(length));
            Assert.True(seen.Add(handle), $"handle {handle} answered twice");
        }

        client.SendRequest(Disc, 9, 0, 0);
        Assert.Equal(count + 1, seen.Count);
        Assert.True(client.ServerClosed());
    }

    [Fact]
    public async Task A_client_that_stops_reading_replies_is_slowed_down_not_buffered_without_limit()
    {
        // Copying reads (no sendfile) run on the I/O threads and buffer their data until sent: the case to bound.
        await using var nbd = new NbdTestServer(new Vmk.Vmkernel.Nbd.NbdServerOptions { ZeroCopyReads = false });
        var path = nbd.AddRandomExport("big", 64 << 20);
        var content = await File.ReadAllBytesAsync(path);
        using var client = RawNbdClient.Connect(nbd.SocketPath);
        client.Go("big");
        const int count = 40, size = 16 << 20; // 640 MiB of replies; the per-connection reply budget is 64 MiB
        var sender = Task.Run(() =>
        {
            for (int i = 0; i < count; i++)
            {
                client.SendRequest(0, (ulong)i, (ulong)(i % 4) * size, size);
            }
        });

        // While nothing is read the server must stop taking requests once its budget is spent.
        var export = nbd.Server.FindExport("big")!;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        while (DateTime.UtcNow < deadline)
        {
            Assert.True(export.GetSnapshot().Read.Operations <= 8, $"server read {export.GetSnapshot().Read.Operations} x 16 MiB that nobody took");
            await Task.Delay(50);
        }

        for (int i = 0; i < count; i++)
        {
            var (error, handle) = client.ReadSimpleReply();
            Assert.Equal(0u, error);
            Assert.Equal(content.AsSpan((int)(handle % 4) * size, size).ToArray(), client.Receive(size));
        }

        await sender;
        Assert.Equal(count, export.GetSnapshot().Read.Operations);
    }

    [Fact]
    public async Task Counters_count_each_kind_of_operation_separately()
    {
        using (var client = RawNbdClient.Connect(_nbd.SocketPath))
        {
            client.Go("disk");
            client.SendRequest(Read, 1, 0, 4096);
            client.ReadSimpleReply();
            client.Receive(4096);
            client.SendRequest(Read, 2, 0, 1 << 20);
            client.ReadSimpleReply();
            client.Receive(1 << 20);
            client.SendRequest(Write, 3, 0, 512, payload: new byte[512]);
            client.ReadSimpleReply();
            client.SendRequest(Flush, 4, 0, 0);
            client.ReadSimpleReply();
            client.SendRequest(Trim, 5, 0, 65536);
            client.ReadSimpleReply();
            client.SendRequest(Read, 6, ExportSize, 1);
            client.ReadSimpleReply();
            client.SendRequest(Disc, 7, 0, 0);
            Assert.True(client.ServerClosed());
        }

        var stats = Assert.Single(_nbd.Server.GetStatistics(), s => s.Name == "disk");
        Assert.Equal((3, 4096 + (1 << 20), 1), (stats.Read.Operations, stats.Read.Bytes, stats.Read.Errors));
        Assert.Equal((1, 512), (stats.Write.Operations, stats.Write.Bytes));
        Assert.Equal(1, stats.Flush.Operations);
        Assert.Equal((1, 65536), (stats.Trim.Operations, stats.Trim.Bytes));
        Assert.True(stats.Read.TotalLatency > TimeSpan.Zero && stats.Read.MaxLatency <= stats.Read.TotalLatency);
        Assert.Equal(1, stats.ConnectionsTotal);
        await WaitUntilAsync(() => _nbd.Server.FindExport("disk")!.ConnectionCount == 0, "connection detached");
    }

    [Fact]
    public async Task Removing_an_export_disconnects_its_clients_refuses_new_ones_and_keeps_the_others()
    {
        using var client = RawNbdClient.Connect(_nbd.SocketPath);
        client.Go("disk");
        client.SendRequest(Read, 1, 0, 512);
        client.ReadSimpleReply();
        client.Receive(512);

        Assert.True(await _nbd.Server.RemoveExportAsync("disk"));
        Assert.True(client.ServerClosed());
        using var late = RawNbdClient.Connect(_nbd.SocketPath);
        late.SendOption(7, RawNbdClient.InfoRequestData("disk"));
        Assert.Equal(RepErrUnknown, late.ReadOptionReply().Type);
        Assert.False(await _nbd.Server.RemoveExportAsync("disk"));
        var info = await ToolRunner.RunCheckedAsync("nbdinfo", "--size", _nbd.Uri("base"));
        Assert.Equal("1048576", info.Trim());
    }

    [Fact]
    public void Adding_an_export_twice_is_refused_with_a_clear_message()
    {
        var device = Vmk.Vmkernel.Storage.FileBlockDevice.Open(_diskPath);
        try
        {
            var ex = Assert.Throws<InvalidOperationException>(() => _nbd.Server.AddExport("disk", device));
            Assert.Contains("'disk' already exists", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            device.Dispose();
        }
    }

    private async Task ServerStillServesAsync()
    {
        var output = await ToolRunner.RunCheckedAsync("qemu-io", "-r", "-f", "raw", "-c", "read 0 64k", _nbd.Uri("disk"));
        Assert.Contains("read 65536/65536 bytes", output, StringComparison.Ordinal);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }
}
