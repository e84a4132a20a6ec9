using System.Text;
using Vmk.Vmkernel.Qemu.Qmp;

namespace Vmk.Vmkernel.Tests.Qemu.Qmp;

public sealed class QmpLineReaderTests
{
    private static async Task<List<string>> ReadAllAsync(QmpLineReader reader)
    {
        var lines = new List<string>();
        while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
        {
            lines.Add(Encoding.UTF8.GetString(line.Span));
        }

        return lines;
    }

    [Fact]
    public async Task Lines_are_split_on_newline_with_crlf_removed_and_a_partial_last_line_dropped()
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes("{\"a\":1}\r\n\n{\"b\":2}\n{\"partial\""));

        Assert.Equal(["{\"a\":1}", "", "{\"b\":2}"], await ReadAllAsync(new QmpLineReader(stream)));
    }

    [Fact]
    public async Task An_oversized_line_comes_back_truncated_once_and_the_stream_resynchronises_after_it()
    {
        const int max = 4096;
        string huge = new('x', max * 3 + 17);
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes($"before\r\n{huge}\r\nafter\r\n"));

        var lines = await ReadAllAsync(new QmpLineReader(stream, max));

        Assert.Equal(3, lines.Count);
        Assert.Equal("before", lines[0]);
        Assert.Equal(max, lines[1].Length);
        Assert.Equal("after", lines[2]);
    }

    [Fact]
    public async Task Lines_longer_than_the_initial_buffer_are_returned_whole()
    {
        string big = new('y', 100_000);
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes($"{big}\n{big}\n"));

        Assert.Equal([big, big], await ReadAllAsync(new QmpLineReader(stream)));
    }
}
