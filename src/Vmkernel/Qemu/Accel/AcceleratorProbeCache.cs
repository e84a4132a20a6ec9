using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Qemu.Accel;

/// <summary>
/// Remembers the probe result for one host boot so that every <c>vmctl vm run</c> does not pay for
/// creating a VM through KVM again. An entry counts only for the boot id and device path it was made
/// with; anything unreadable is ignored and overwritten. Failing to read or write the cache never fails
/// the probe: it only costs a new measurement.
/// </summary>
internal sealed class AcceleratorProbeCache(string cachePath, ILogger? logger)
{
    public AcceleratorProbeCacheEntry? TryRead(string bootId, string devicePath)
    {
        try
        {
            if (!File.Exists(cachePath))
            {
                return null;
            }

            var entry = JsonSerializer.Deserialize(File.ReadAllText(cachePath), AcceleratorProbeJsonContext.Default.AcceleratorProbeCacheEntry);
            if (entry is null || entry.BootId != bootId || entry.DevicePath != devicePath || string.IsNullOrWhiteSpace(entry.Reason))
            {
                return null;
            }

            return entry;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            logger?.LogDebug(e, "Ignoring unreadable accelerator probe cache {CachePath}", cachePath);
            return null;
        }
    }

    public void Write(AcceleratorProbeCacheEntry entry)
    {
        var temporary = $"{cachePath}.{Environment.ProcessId}.tmp";
        try
        {
            var directory = Path.GetDirectoryName(cachePath);
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }

            // Write then rename, so a concurrent reader sees the old entry or the new one, never half.
            File.WriteAllText(temporary, JsonSerializer.Serialize(entry, AcceleratorProbeJsonContext.Default.AcceleratorProbeCacheEntry));
            File.Move(temporary, cachePath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger?.LogWarning("Cannot write the accelerator probe cache {CachePath} ({Error}); the next start probes again", cachePath, e.Message);
            TryDelete(temporary);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing more to do: a stray temporary file in /run goes away at the next boot.
        }
    }
}
