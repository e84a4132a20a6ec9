namespace Vmk.E2E.Tests;

/// <summary>Waits for a condition a user would wait for, polling, with a generous deadline; the failure says what was last seen.</summary>
public static class Eventually
{
    public static async Task<T> WaitAsync<T>(Func<Task<(bool Done, T Value, string Seen)>> probe, TimeSpan deadline, string what)
    {
        var until = DateTime.UtcNow + deadline;
        var seen = "(nothing yet)";
        var interval = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            var (done, value, now) = await probe();
            seen = now;
            if (done)
            {
                return value;
            }
            if (DateTime.UtcNow > until)
            {
                throw new Xunit.Sdk.XunitException($"{what}: not within {deadline.TotalSeconds:0} s; last seen: {seen}");
            }
            // Polling interval of an observer, not a synchronisation: the condition is re-checked each time.
            await Task.Delay(interval);
            interval = TimeSpan.FromMilliseconds(Math.Min(interval.TotalMilliseconds * 2, 2000));
        }
    }
}
