namespace Vmk.Operator.Tests;

/// <summary>Waiting on conditions (never on time) with a generous deadline.</summary>
internal static class Eventually
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    /// <summary>Polls <paramref name="condition"/> until true; fails with <paramref name="what"/> after the deadline.</summary>
    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? deadline = null)
    {
        var until = DateTime.UtcNow + (deadline ?? Deadline);
        while (!condition())
        {
            if (DateTime.UtcNow > until)
            {
                Assert.Fail("timed out waiting for: " + what);
            }
            // A poll interval, not a synchronisation: the condition is what the test waits for.
            await Task.Delay(20);
        }
    }

    /// <summary>Reads until <paramref name="done"/> holds (read errors count as not yet); fails naming <paramref name="what"/> and the last value.</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan deadline, string what, Func<T, string?>? describe = null)
    {
        var until = DateTime.UtcNow + deadline;
        Exception? last = null;
        T? value = default;
        while (DateTime.UtcNow < until)
        {
            try
            {
                value = await read();
                last = null;
                if (done(value))
                {
                    return value;
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                last = e;
            }
            // A poll interval, not a synchronisation: the condition is what the test waits for.
            await Task.Delay(200);
        }
        var shown = value is null ? "none" : describe?.Invoke(value) ?? value.ToString();
        throw new TimeoutException($"{what} did not happen within {deadline.TotalSeconds} s; last value: {shown}; last error: {last?.Message}");
    }

    public static Task<T> WithinAsync<T>(Task<T> task) => task.WaitAsync(Deadline);

    public static Task WithinAsync(Task task) => task.WaitAsync(Deadline);
}
