namespace Vmk.Vmkernel.Resources;

/// <summary>
/// ESXi's admission control for reservations: a VM starts only if its CPU and memory reservations fit
/// in what the host has not already promised to other VMs, so reservations are never over-committed
/// (limits and shares may be; they are not promises). Idempotent per VM: reserving again for the same
/// VM replaces its previous reservation, judged as if the old one were already released.
/// Thread-safe.
/// </summary>
public sealed class ReservationLedger
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (long CpuMillicores, long MemoryBytes)> _reservations = new(StringComparer.Ordinal);
    private long _reservedCpuMillicores;
    private long _reservedMemoryBytes;

    public ReservationLedger(long cpuCapacityMillicores, long memoryCapacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cpuCapacityMillicores);
        ArgumentOutOfRangeException.ThrowIfNegative(memoryCapacityBytes);
        CpuCapacityMillicores = cpuCapacityMillicores;
        MemoryCapacityBytes = memoryCapacityBytes;
    }

    public long CpuCapacityMillicores { get; }

    public long MemoryCapacityBytes { get; }

    public long ReservedCpuMillicores
    {
        get
        {
            lock (_lock)
            {
                return _reservedCpuMillicores;
            }
        }
    }

    public long ReservedMemoryBytes
    {
        get
        {
            lock (_lock)
            {
                return _reservedMemoryBytes;
            }
        }
    }

    /// <summary>
    /// Reserves <paramref name="cpuMillicores"/> and <paramref name="memoryBytes"/> for <paramref name="vmId"/>,
    /// all or nothing. <paramref name="reason"/> says what was reserved, or which resource is short and by how much.
    /// </summary>
    public bool TryReserve(string vmId, long cpuMillicores, long memoryBytes, out string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(vmId);
        ArgumentOutOfRangeException.ThrowIfNegative(cpuMillicores);
        ArgumentOutOfRangeException.ThrowIfNegative(memoryBytes);
        lock (_lock)
        {
            var previous = _reservations.GetValueOrDefault(vmId);
            var freeCpu = CpuCapacityMillicores - (_reservedCpuMillicores - previous.CpuMillicores);
            var freeMemory = MemoryCapacityBytes - (_reservedMemoryBytes - previous.MemoryBytes);
            var shortages = new List<string>();
            if (cpuMillicores > freeCpu)
            {
                shortages.Add($"CPU is short by {ResourceFormat.Millicores(cpuMillicores - freeCpu)} " +
                              $"(requested {ResourceFormat.Millicores(cpuMillicores)}, {ResourceFormat.Millicores(freeCpu)} of " +
                              $"{ResourceFormat.Millicores(CpuCapacityMillicores)} unreserved)");
            }

            if (memoryBytes > freeMemory)
            {
                shortages.Add($"memory is short by {ResourceFormat.Bytes(memoryBytes - freeMemory)} " +
                              $"(requested {ResourceFormat.Bytes(memoryBytes)}, {ResourceFormat.Bytes(freeMemory)} of " +
                              $"{ResourceFormat.Bytes(MemoryCapacityBytes)} unreserved)");
            }

            if (shortages.Count > 0)
            {
                reason = $"cannot reserve resources for VM '{vmId}': {string.Join(" and ", shortages)}; " +
                         "lower its reservation, or stop or move VMs that hold reservations on this host";
                return false;
            }

            _reservedCpuMillicores += cpuMillicores - previous.CpuMillicores;
            _reservedMemoryBytes += memoryBytes - previous.MemoryBytes;
            _reservations[vmId] = (cpuMillicores, memoryBytes);
            reason = $"reserved {ResourceFormat.Millicores(cpuMillicores)} CPU and {ResourceFormat.Bytes(memoryBytes)} memory for VM '{vmId}' " +
                     $"(host: {ResourceFormat.Millicores(_reservedCpuMillicores)} of {ResourceFormat.Millicores(CpuCapacityMillicores)} CPU and " +
                     $"{ResourceFormat.Bytes(_reservedMemoryBytes)} of {ResourceFormat.Bytes(MemoryCapacityBytes)} memory reserved)";
            return true;
        }
    }

    /// <summary>Gives back the VM's reservation; false when it had none.</summary>
    public bool Release(string vmId)
    {
        lock (_lock)
        {
            if (!_reservations.Remove(vmId, out var previous))
            {
                return false;
            }

            _reservedCpuMillicores -= previous.CpuMillicores;
            _reservedMemoryBytes -= previous.MemoryBytes;
            return true;
        }
    }
}
