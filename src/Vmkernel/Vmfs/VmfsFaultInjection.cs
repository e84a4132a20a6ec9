namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Test-only crash points in the metadata journal. A crash test sets <see cref="Hook"/> in a child process to
/// SIGKILL itself at a named step ("journal-images-written", "journal-committed", "journal-half-applied",
/// "journal-applied", "data-written"), then checks that the datastore is consistent after replay. A hook that
/// throws a <see cref="VmfsException"/> at "heartbeat-renew" makes renewals fail as if the device were lost.
/// Null (the default) costs one null check per step.
/// </summary>
public static class VmfsFaultInjection
{
    public static Action<string>? Hook { get; set; }

    internal static void At(string step) => Hook?.Invoke(step);
}
