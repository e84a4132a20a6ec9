namespace Vmk.Vmkernel.Vm;

/// <summary>Virtual CPU topology; the guest sees Sockets x Cores x Threads vCPUs.</summary>
public sealed record CpuTopology(int Sockets = 1, int Cores = 1, int Threads = 1)
{
    public int VCpus => Sockets * Cores * Threads;
}
