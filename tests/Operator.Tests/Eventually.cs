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

    public static Task<T> WithinAsync<T>(Task<T> task) => task.WaitAsync(Deadline);

    public static Task WithinAsync(Task task) => task.WaitAsync(Deadline);
}
