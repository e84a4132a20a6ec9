namespace Vmk.Operator.Runtime.Informer;

/// <summary>Exponential backoff with jitter for the informer's list/watch retries (not thread-safe: one loop owns it).</summary>
internal sealed class Backoff(TimeSpan min, TimeSpan max)
{
    private int _failures;

    public void Reset() => _failures = 0;

    /// <summary>The wait before the next attempt: min * 2^failures, capped, plus up to half of it at random.</summary>
    public TimeSpan Next()
    {
        var exponent = Math.Min(_failures++, 20);
        var ms = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, exponent));
        ms += Random.Shared.NextDouble() * ms / 2;
        return TimeSpan.FromMilliseconds(Math.Min(ms, max.TotalMilliseconds));
    }
}
