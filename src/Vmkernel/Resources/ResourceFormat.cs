using System.Globalization;

namespace Vmk.Vmkernel.Resources;

/// <summary>Figures in messages people read: "1.5 GiB", "250m".</summary>
internal static class ResourceFormat
{
    public static string Bytes(long bytes)
    {
        string[] units = ["KiB", "MiB", "GiB", "TiB"];
        if (Math.Abs(bytes) < 1024)
        {
            return $"{bytes.ToString(CultureInfo.InvariantCulture)} bytes";
        }

        double value = bytes;
        var unit = -1;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return $"{value.ToString("0.##", CultureInfo.InvariantCulture)} {units[unit]}";
    }

    public static string Millicores(long millicores) => $"{millicores.ToString(CultureInfo.InvariantCulture)}m";
}
