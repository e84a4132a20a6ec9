using System.Diagnostics;

namespace Vmk.Vmkernel.Tests.Migration;

/// <summary>
/// qemu-io kept open on an NBD export, fed commands on stdin: a real NBD client whose connection outlives a
/// migration, so the test can try to write through it after the handover.
/// </summary>
internal sealed class InteractiveQemuIo : IAsyncDisposable
{
    private readonly Process _process;

    public InteractiveQemuIo(string socket, string export)
    {
        var start = new ProcessStartInfo("qemu-io")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-f", "raw", $"nbd+unix:///{export}?socket={socket}" })
        {
            start.ArgumentList.Add(a);
        }
        _process = Process.Start(start) ?? throw new InvalidOperationException("could not start qemu-io");
        _process.ErrorDataReceived += (_, e) => Add(e.Data);
        _process.OutputDataReceived += (_, e) => Add(e.Data);
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    private readonly System.Threading.Channels.Channel<string> _lines = System.Threading.Channels.Channel.CreateUnbounded<string>();

    /// <summary>Runs one read or write command and returns the line that tells how it went.</summary>
    public async Task<string> RunAsync(string command)
    {
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            // Without a terminal the prompt has no newline of its own: "qemu-io> wrote 4096/4096 bytes at offset 0".
            var line = (await _lines.Reader.ReadAsync(timeout.Token)).Replace("qemu-io> ", "", StringComparison.Ordinal);
            if (line.StartsWith("wrote ", StringComparison.Ordinal) || line.StartsWith("read ", StringComparison.Ordinal)
                || line.Contains("failed", StringComparison.Ordinal) || line.Contains("error", StringComparison.OrdinalIgnoreCase)
                || line.StartsWith("Pattern verification", StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            _lines.Writer.TryWrite(line);
        }
    }
}
