namespace Vmk.Operator.Runtime.Informer;

public sealed class InformerOptions
{
    /// <summary>
    /// Each watch asks the server to end it after a random time between this and twice this (client-go: 5-10 min),
    /// so watches of many informers do not all restart at once.
    /// </summary>
    public TimeSpan WatchTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>First wait after a failed list or watch; doubles per consecutive failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);
}
