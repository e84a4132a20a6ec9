using System.Diagnostics;

namespace Vmk.Vmkernel.Tests.Resources;

/// <summary>Waits for a condition on kernel state that offers no notification, with a generous deadline.</summary>
internal static class Poll
{
    public static T Until<T>(Func<T> read, Func<T, bool> done, TimeSpan deadline, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var value = read();
            if (done(value))
            {
                return value;
            }

            if (clock.Elapsed > deadline)
            {
                throw new TimeoutException($"{what} did not happen within {deadline.TotalSeconds} s; last value: {value}");
            }

            Thread.Sleep(50);
        }
    }
}
