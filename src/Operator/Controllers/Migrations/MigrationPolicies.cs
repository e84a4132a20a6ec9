using System.Globalization;
using System.Text.RegularExpressions;
using Vmk.NodeDaemon.Protos;
using Vmk.Operator.Apis.V1Alpha1;

namespace Vmk.Operator.Controllers.Migrations;

/// <summary>spec.policy of a VirtualMachineMigration as the daemons' MigrationPolicy (CRD defaults apply when a field is absent).</summary>
public static partial class MigrationPolicies
{
    /// <summary>How long the daemon waits for the transferred bytes to grow before it cancels.</summary>
    public const int NoProgressTimeoutSeconds = 30;

    /// <summary>
    /// The CRD's default downtimeLimit. QEMU's own 300 ms lets an idle guest over a TLS channel pause for up to a few
    /// hundred ms; 30 ms makes QEMU iterate until the rest fits (a few more ms of pre-copy), and auto-converge helps a
    /// guest that dirties memory faster than it is sent.
    /// </summary>
    public static readonly TimeSpan DefaultDowntimeLimit = TimeSpan.FromMilliseconds(30);

    public static MigrationPolicy Build(VirtualMachineMigration m)
    {
        var policy = CustomObject.At(m.Spec, "policy");
        var timeout = Duration(CustomObject.Str(policy, "timeout")) ?? TimeSpan.FromMinutes(10);
        return new MigrationPolicy
        {
            BandwidthBytesPerSecond = CustomObject.Quantity(policy, false, "bandwidth") ?? 0,
            DowntimeLimitMs = (int)(Duration(CustomObject.Str(policy, "downtimeLimit")) ?? DefaultDowntimeLimit).TotalMilliseconds,
            AutoConverge = CustomObject.Bool(policy, true, "autoConverge"),
            DisableTls = !CustomObject.Bool(policy, true, "encrypted"),
            NoProgressTimeoutSeconds = NoProgressTimeoutSeconds,
            TimeoutSeconds = (int)Math.Ceiling(timeout.TotalSeconds),
        };
    }

    /// <summary>A duration as the CRD's pattern has it: "300ms", "10m", "1m30s".</summary>
    public static TimeSpan? Duration(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }
        var total = TimeSpan.Zero;
        var matches = Part().Matches(text);
        if (matches.Sum(m => m.Length) != text.Length)
        {
            return null;
        }
        foreach (Match m in matches)
        {
            var value = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            total += m.Groups[2].Value switch
            {
                "ms" => TimeSpan.FromMilliseconds(value),
                "s" => TimeSpan.FromSeconds(value),
                "m" => TimeSpan.FromMinutes(value),
                _ => TimeSpan.FromHours(value),
            };
        }
        return total;
    }

    [GeneratedRegex(@"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")]
    private static partial Regex Part();
}
