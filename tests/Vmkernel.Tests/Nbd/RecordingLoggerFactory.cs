using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>Keeps every log entry in memory so tests can check that bad input is reported, and reported once.</summary>
internal sealed class RecordingLoggerFactory : ILoggerFactory
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    /// <summary>Waits until an entry matching <paramref name="predicate"/> appears (the server logs on its own threads).</summary>
    public async Task<LogEntry> WaitForAsync(Func<LogEntry, bool> predicate, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            var match = _entries.FirstOrDefault(predicate);
            if (match is not null)
            {
                return match;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"no log entry for {what}; log:\n{string.Join('\n', _entries.Select(e => e.Message))}");
    }

    private sealed class Logger(RecordingLoggerFactory owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._entries.Enqueue(new LogEntry(logLevel, eventId.Id, formatter(state, exception)));
    }
}

internal sealed record LogEntry(LogLevel Level, int EventId, string Message);
