using System.Text.Json;

namespace Vmk.Vmkernel.Tests.Qemu.Qmp;

/// <summary>A command as the fake QMP server received it off the wire.</summary>
internal sealed record ReceivedCommand(string Execute, JsonElement Id, JsonElement? Arguments, string RawLine);
