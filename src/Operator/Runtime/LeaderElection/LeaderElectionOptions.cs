namespace Vmk.Operator.Runtime.LeaderElection;

/// <summary>The Lease the operator replicas compete for (coordination.k8s.io/v1), and its timing.</summary>
public sealed class LeaderElectionOptions
{
    public string LeaseNamespace { get; init; } = "vmk-system";

    public string LeaseName { get; init; } = "vm-operator";

    /// <summary>This replica's identity in the Lease (holderIdentity); unique per process.</summary>
    public string Identity { get; init; } = Environment.MachineName + "_" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>How long a lease is valid without renewal; others take over this long after the leader dies. Whole seconds.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>The leader gives up (stops its controllers) if it cannot renew within this; shorter than the lease.</summary>
    public TimeSpan RenewDeadline { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan RetryPeriod { get; init; } = TimeSpan.FromSeconds(2);

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(LeaseNamespace) || string.IsNullOrWhiteSpace(LeaseName) || string.IsNullOrWhiteSpace(Identity))
        {
            throw new ArgumentException("leader election needs LeaseNamespace, LeaseName and Identity");
        }
        if (LeaseDuration < TimeSpan.FromSeconds(1) || LeaseDuration.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new ArgumentException($"LeaseDuration must be whole seconds, at least 1 (was {LeaseDuration}): the Lease stores leaseDurationSeconds");
        }
        if (RenewDeadline >= LeaseDuration || RetryPeriod >= RenewDeadline)
        {
            throw new ArgumentException($"leader election needs RetryPeriod ({RetryPeriod}) < RenewDeadline ({RenewDeadline}) < LeaseDuration ({LeaseDuration})");
        }
    }
}
