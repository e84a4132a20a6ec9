using System.Diagnostics;

namespace Vmk.NodeDaemon.Tests;

/// <summary>Waits for a condition on state that offers no notification (an object in the API server), with a generous deadline.</summary>
internal static class Eventually
{
    public static async Task<T> UntilAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan deadline, string what)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        T? value = default;
        while (clock.Elapsed < deadline)
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
            await Task.Delay(100);
        }
        throw new TimeoutException($"{what} did not happen within {deadline.TotalSeconds} s; last value: {value}; last error: {last?.Message}");
    }
}
