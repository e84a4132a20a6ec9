using System.Text.Json;

namespace Vmk.Vmkernel.Qemu.Qmp;

/// <summary>
/// An asynchronous QMP event such as <c>STOP</c>, <c>RESUME</c>, <c>SHUTDOWN</c> or <c>MIGRATION</c>.
/// <paramref name="Data"/> is the event's <c>data</c> object (an empty object when QEMU sent none);
/// <paramref name="Timestamp"/> is QEMU's own timestamp of the event.
/// </summary>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp);
