namespace Vmk.Operator.Runtime.Queue;

/// <summary>
/// Per-key retry delay after failures, KubeOps' rule: <c>base * 2^min(n, maxExponent) + random(0, maxJitter)</c>
/// where n is the number of consecutive failures of that key (1 on the first). Defaults: base 1 s, exponent capped
/// at 5, jitter up to 1 s, so 2 s, 4 s, ... 32 s (+ jitter) and never longer.
/// </summary>
public sealed class ExponentialBackoffRateLimiter
{
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public int MaxExponent { get; init; } = 5;

    public TimeSpan MaxJitter { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan When(int failures)
    {
        var n = Math.Clamp(failures, 0, MaxExponent);
        var jitter = MaxJitter.TotalMilliseconds * Random.Shared.NextDouble();
        return TimeSpan.FromMilliseconds((BaseDelay.TotalMilliseconds * Math.Pow(2, n)) + jitter);
    }
}
