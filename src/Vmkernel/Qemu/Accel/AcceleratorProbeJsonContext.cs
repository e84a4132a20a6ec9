using System.Text.Json.Serialization;

namespace Vmk.Vmkernel.Qemu.Accel;

[JsonSourceGenerationOptions(WriteIndented = true, UseStringEnumConverter = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AcceleratorProbeCacheEntry))]
internal sealed partial class AcceleratorProbeJsonContext : JsonSerializerContext
{
}
