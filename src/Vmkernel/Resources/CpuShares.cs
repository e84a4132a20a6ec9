namespace Vmk.Vmkernel.Resources;

/// <summary>
/// A VM's CPU shares in ESXi units: its weight against other VMs when the host's CPUs are contended.
/// Shares only matter under contention; an idle host gives every VM what it asks for.
/// </summary>
public sealed record CpuShares
{
    public const int LowPerVcpu = 500;
    public const int NormalPerVcpu = 1000;
    public const int HighPerVcpu = 2000;

    /// <summary>ESXi's range for custom shares.</summary>
    public const int MinimumCustom = 1;
    public const int MaximumCustom = 1_000_000;

    private CpuShares(SharesLevel level, int value)
    {
        Level = level;
        Value = value;
    }

    public SharesLevel Level { get; }

    /// <summary>Absolute shares (the level's per-vCPU figure times the vCPUs, or the custom number).</summary>
    public int Value { get; }

    /// <summary>Shares of a named level for a VM with <paramref name="vcpus"/> vCPUs, as ESXi computes them.</summary>
    public static CpuShares ForLevel(SharesLevel level, int vcpus)
    {
        if (vcpus < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(vcpus), vcpus, "a VM has at least 1 vCPU");
        }

        var perVcpu = level switch
        {
            SharesLevel.Low => LowPerVcpu,
            SharesLevel.Normal => NormalPerVcpu,
            SharesLevel.High => HighPerVcpu,
            SharesLevel.Custom => throw new ArgumentException("custom shares have no per-vCPU figure: use CpuShares.Custom(value)", nameof(level)),
            _ => throw new ArgumentOutOfRangeException(nameof(level), level, "unknown shares level: use low, normal, high or custom"),
        };
        return new CpuShares(level, checked(perVcpu * vcpus));
    }

    public static CpuShares Custom(int value)
    {
        if (value is < MinimumCustom or > MaximumCustom)
        {
            throw new ArgumentOutOfRangeException(nameof(value), value,
                $"custom CPU shares must be between {MinimumCustom} and {MaximumCustom}");
        }

        return new CpuShares(SharesLevel.Custom, value);
    }

    public override string ToString() => Level == SharesLevel.Custom ? $"{Value} (custom)" : $"{Value} ({Level.ToString().ToLowerInvariant()})";
}
