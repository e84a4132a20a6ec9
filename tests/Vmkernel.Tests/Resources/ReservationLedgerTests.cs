using Vmk.Vmkernel.Resources;

namespace Vmk.Vmkernel.Tests.Resources;

public class ReservationLedgerTests
{
    private const long GiB = 1024L * 1024 * 1024;

    private readonly ReservationLedger _ledger = new(cpuCapacityMillicores: 4000, memoryCapacityBytes: 16 * GiB);

    [Fact]
    public void Reservations_that_fit_are_admitted_and_counted()
    {
        Assert.True(_ledger.TryReserve("vm-a", 1500, 4 * GiB, out var reason));

        Assert.Equal("reserved 1500m CPU and 4 GiB memory for VM 'vm-a' (host: 1500m of 4000m CPU and 4 GiB of 16 GiB memory reserved)", reason);
        Assert.Equal((1500, 4 * GiB), (_ledger.ReservedCpuMillicores, _ledger.ReservedMemoryBytes));
    }

    [Fact]
    public void Over_commit_is_refused_naming_what_is_short_and_by_how_much()
    {
        Assert.True(_ledger.TryReserve("vm-a", 3000, 14 * GiB, out _));

        Assert.False(_ledger.TryReserve("vm-b", 1500, 1 * GiB, out var cpuShort));
        Assert.Equal("cannot reserve resources for VM 'vm-b': CPU is short by 500m (requested 1500m, 1000m of 4000m unreserved); " +
                     "lower its reservation, or stop or move VMs that hold reservations on this host", cpuShort);

        Assert.False(_ledger.TryReserve("vm-b", 2000, 3 * GiB, out var bothShort));
        Assert.Contains("CPU is short by 1000m", bothShort);
        Assert.Contains("memory is short by 1 GiB (requested 3 GiB, 2 GiB of 16 GiB unreserved)", bothShort);

        Assert.Equal((3000, 14 * GiB), (_ledger.ReservedCpuMillicores, _ledger.ReservedMemoryBytes));
    }

    [Fact]
    public void Reserving_again_for_the_same_VM_replaces_its_reservation()
    {
        Assert.True(_ledger.TryReserve("vm-a", 3000, 8 * GiB, out _));

        Assert.True(_ledger.TryReserve("vm-a", 3000, 8 * GiB, out _));
        Assert.True(_ledger.TryReserve("vm-a", 4000, 16 * GiB, out _), "the VM's own old reservation does not count against it");
        Assert.Equal((4000, 16 * GiB), (_ledger.ReservedCpuMillicores, _ledger.ReservedMemoryBytes));

        Assert.True(_ledger.TryReserve("vm-a", 1000, 2 * GiB, out _));
        Assert.Equal((1000, 2 * GiB), (_ledger.ReservedCpuMillicores, _ledger.ReservedMemoryBytes));
    }

    [Fact]
    public void Release_gives_the_reservation_back_once()
    {
        Assert.True(_ledger.TryReserve("vm-a", 4000, 16 * GiB, out _));
        Assert.False(_ledger.TryReserve("vm-b", 1, 0, out _));

        Assert.True(_ledger.Release("vm-a"));
        Assert.False(_ledger.Release("vm-a"));

        Assert.True(_ledger.TryReserve("vm-b", 4000, 16 * GiB, out _));
    }

    [Fact]
    public void Concurrent_reservations_never_over_commit()
    {
        var admitted = 0;
        Parallel.For(0, 200, i =>
        {
            if (_ledger.TryReserve($"vm-{i}", 100, GiB / 4, out _))
            {
                Interlocked.Increment(ref admitted);
            }
        });

        Assert.Equal(40, admitted); // 4000m / 100m; memory (64 x 256 MiB) would allow more
        Assert.Equal(4000, _ledger.ReservedCpuMillicores);
    }
}
