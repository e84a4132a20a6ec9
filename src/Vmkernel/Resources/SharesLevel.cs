namespace Vmk.Vmkernel.Resources;

/// <summary>
/// ESXi's share levels: High:Normal:Low = 4:2:1. For CPU that is 2000/1000/500 shares per vCPU
/// (<see cref="CpuShares.ForLevel"/>); <see cref="Custom"/> takes an absolute number of shares.
/// </summary>
public enum SharesLevel
{
    Low,
    Normal,
    High,
    Custom,
}
