using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Resource leases decided by Disk Paxos over plain sector reads and writes (sanlock's paxos lease).
/// Each lease area is a leader sector plus one ballot sector per host slot; a host writes only its own ballot
/// sector and reads all of them. Acquiring version v+1 of a lease runs one Disk Paxos instance:
/// <list type="number">
/// <item>phase 1: write own ballot with mbal = b (unique: b mod maxHosts = slot+1), read all ballots; abort if
/// any ballot for v+1 has mbal &gt; b (or any is for a later version);</item>
/// <item>pick the value of the highest accepted ballot for v+1, or our own proposal if none;</item>
/// <item>phase 2: write own ballot with bal = b and that value, read all; abort on a higher mbal;</item>
/// <item>the value is chosen; the leader sector is written with it (by whoever learns it first).</item>
/// </list>
/// Two hosts can never both complete phase 2 of one version with different values (Disk Paxos' safety needs
/// only that a completed sector write is seen by every later read). Timing matters only for liveness and for
/// deciding that an owner is dead: see HostHeartbeat and docs/vmfs.md.
/// Shared-read holders briefly own the lease exclusively, set the shared mark in their own ballot sector and
/// free the leader again; an exclusive acquirer that wins the leader checks that no live host has that mark.
/// </summary>
internal sealed class PaxosLeaseManager
{
    private readonly MetadataIo _io;
    private readonly HostHeartbeat _host;
    private readonly ILogger? _logger;
    private long _takeovers;

    public PaxosLeaseManager(MetadataIo io, HostHeartbeat host, ILogger? logger)
    {
        _io = io;
        _host = host;
        _logger = logger;
    }

    private Superblock Sb => _io.Superblock;

    /// <summary>Leases this host acquired from an exclusive holder whose heartbeat had stopped.</summary>
    public long Takeovers => Interlocked.Read(ref _takeovers);

    private int Me => _host.Slot;

    public LeaseLeader ReadLeader(int resource)
    {
        var offset = Sb.LeaderOffset(resource);
        return _io.ReadParsed(offset, s => LeaseLeader.Read(s, offset, resource));
    }

    public LeaseBallot[] ReadBallots(int resource)
    {
        for (var attempt = 0; ; attempt++)
        {
            var s = Sb.SectorSize;
            var data = _io.ReadSectors(Sb.BallotOffset(resource, 0), Sb.MaxHosts);
            try
            {
                var ballots = new LeaseBallot[Sb.MaxHosts];
                for (var i = 0; i < ballots.Length; i++)
                {
                    ballots[i] = LeaseBallot.Read(data.AsSpan(i * s, s), Sb.BallotOffset(resource, i), resource, i);
                }

                return ballots;
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.Corrupt && attempt < 3)
            {
                Thread.Yield();
            }
        }
    }

    /// <summary>
    /// Acquires a lease, waiting up to <paramref name="wait"/> for a live holder to release it or for a dead one
    /// to be declared dead, reading the leader every <paramref name="pollInterval"/> meanwhile (a read only, nothing
    /// written while a live host holds it; default an eighth of the heartbeat interval, at least 2 ms).
    /// <paramref name="describe"/> names the resource in errors.
    /// </summary>
    public HeldLease Acquire(int resource, LeaseMode mode, TimeSpan wait, string describe, TimeSpan? pollInterval = null)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(wait.TotalSeconds * Stopwatch.Frequency);
        var poll = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 2, pollInterval?.Ticks ?? Sb.Timings.HeartbeatInterval.Ticks / 8));
        var aborts = 0;
        while (true)
        {
            _host.EnsureCanWrite();
            var leader = ReadLeader(resource);
            string? blocker = null;
            var fromDeadHost = false;
            if (leader.Mode == LeaseMode.Exclusive)
            {
                var owner = _host.GetLiveness(leader.OwnerSlot, leader.OwnerGeneration);
                if (!owner.IsDead)
                {
                    blocker = HolderText(describe, "exclusive", leader, owner);
                }
                else
                {
                    fromDeadHost = true;
                    _logger?.LogWarning("Taking over {Resource} from dead host {Host} (slot {Slot}, unchanged for {Stale:F1} s)",
                        describe, owner.HostName, owner.Slot, owner.UnchangedFor.TotalSeconds);
                }
            }

            if (blocker is null)
            {
                var proposal = new LeaseBallot { ValueOwnerSlot = Me, ValueOwnerGeneration = _host.Generation, ValueMode = LeaseMode.Exclusive };
                var outcome = RunBallot(resource, leader.Version + 1, proposal, out var chosen);
                if (outcome)
                {
                    var won = chosen!.ValueOwnerSlot == Me && chosen.ValueOwnerGeneration == _host.Generation;
                    var winner = new LeaseLeader
                    {
                        Resource = resource,
                        Mode = LeaseMode.Exclusive,
                        OwnerSlot = chosen.ValueOwnerSlot,
                        OwnerGeneration = chosen.ValueOwnerGeneration,
                        Version = leader.Version + 1,
                        AcquiredUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                    };
                    if (won)
                    {
                        WriteLeader(winner);
                        var held = new HeldLease(resource, LeaseMode.Exclusive, leader.Version + 1);
                        var shared = mode == LeaseMode.Exclusive ? LiveSharedHolders(resource) : [];
                        if (shared.Count > 0)
                        {
                            FreeLeader(held);
                            blocker = $"{describe} is open shared-read by {string.Join(", ", shared)}";
                        }
                        else if (mode == LeaseMode.SharedRead)
                        {
                            SetSharedMark(resource, true);
                            FreeLeader(held);
                            CountTakeover(fromDeadHost);
                            return held with { Mode = LeaseMode.SharedRead };
                        }
                        else
                        {
                            CountTakeover(fromDeadHost);
                            return held;
                        }
                    }
                    else
                    {
                        // Another host won this version. Only when it is dead may we record its win in the leader
                        // (so the next round can take over); a live winner writes its own leader, and writing it
                        // for a live host could overwrite its release.
                        var owner = _host.GetLiveness(winner.OwnerSlot, winner.OwnerGeneration);
                        if (owner.IsDead)
                        {
                            WriteLeader(winner);
                            continue;
                        }

                        blocker = HolderText(describe, "exclusive", winner, owner);
                    }
                }
                else
                {
                    aborts++;
                }
            }

            if (Stopwatch.GetTimestamp() >= deadline)
            {
                throw new VmfsException(VmfsErrorCode.Locked,
                    blocker is not null
                        ? $"{blocker}. Close it on that host (power off or migrate the VM using it), or wait until that host is declared dead."
                        : $"{describe} is contended: {aborts} ballots lost to other hosts acquiring it at the same time; try again.");
            }

            // Randomised backoff keeps competing proposers from aborting each other forever.
            var sleep = blocker is not null ? poll : TimeSpan.FromMilliseconds(Random.Shared.Next(1, 4 + Math.Min(aborts, 20)));
            Thread.Sleep(sleep);
        }
    }

    private void CountTakeover(bool fromDeadHost)
    {
        if (fromDeadHost)
        {
            Interlocked.Increment(ref _takeovers);
        }
    }

    /// <summary>Releases a lease; nothing is written if this host has fenced itself or lost the lease.</summary>
    public void Release(HeldLease held)
    {
        if (!_host.CanWrite)
        {
            return;
        }

        if (held.Mode == LeaseMode.SharedRead)
        {
            SetSharedMark(held.Resource, false);
            return;
        }

        var leader = ReadLeader(held.Resource);
        if (leader.Mode == LeaseMode.Exclusive && leader.OwnerSlot == Me && leader.OwnerGeneration == _host.Generation && leader.Version == held.Version)
        {
            FreeLeader(held);
        }
        else
        {
            _logger?.LogWarning("Lease {Resource} version {Version} was no longer ours on release (now version {Now}, slot {Slot})",
                held.Resource, held.Version, leader.Version, leader.OwnerSlot);
        }
    }

    /// <summary>Describes the holder for errors, e.g. "disk 'vm1' is locked exclusive by host 'esx2' (...)".</summary>
    public string HolderText(string describe, string how, LeaseLeader leader, HostLiveness owner) =>
        $"{describe} is locked {how} by host '{owner.HostName}' (heartbeat slot {leader.OwnerSlot}, host generation {leader.OwnerGeneration}; " +
        $"lease version {leader.Version}; heartbeat unchanged for {owner.UnchangedFor.TotalSeconds:F1} s of the {owner.DeadAfter.TotalSeconds:F0} s after which it counts as dead" +
        (owner.Problem is null ? ")" : $"; {owner.Problem})");

    public List<string> LiveSharedHolders(int resource)
    {
        var result = new List<string>();
        foreach (var b in ReadBallots(resource))
        {
            if (b.SharedHeld && b.HostSlot != Me)
            {
                var live = _host.GetLiveness(b.HostSlot, b.SharedGeneration);
                if (!live.IsDead)
                {
                    result.Add($"host '{live.HostName}' (slot {b.HostSlot})");
                }
            }
        }

        return result;
    }

    private bool RunBallot(int resource, ulong version, LeaseBallot proposal, out LeaseBallot? chosen)
    {
        chosen = null;
        var ballots = ReadBallots(resource);
        if (ballots.Any(b => b.Version > version))
        {
            return false;
        }

        var hosts = (ulong)Sb.MaxHosts;
        var maxMbal = ballots.Where(b => b.Version == version).Select(b => b.MaxBallot).DefaultIfEmpty(0UL).Max();
        var bal = ((maxMbal / hosts) + 1) * hosts + (ulong)Me + 1;
        var mine = ballots[Me];
        var sameVersion = mine.Version == version;
        var phase1 = mine with
        {
            Resource = resource,
            HostSlot = Me,
            Version = version,
            MaxBallot = bal,
            Ballot = sameVersion ? mine.Ballot : 0,
            ValueOwnerSlot = sameVersion ? mine.ValueOwnerSlot : 0,
            ValueOwnerGeneration = sameVersion ? mine.ValueOwnerGeneration : 0,
            ValueMode = sameVersion ? mine.ValueMode : LeaseMode.Free,
        };
        WriteBallot(phase1);
        ballots = ReadBallots(resource);
        if (Beaten(ballots, version, bal))
        {
            return false;
        }

        var accepted = ballots.Where(b => b.Version == version && b.Ballot > 0).MaxBy(b => b.Ballot);
        var value = accepted ?? proposal;
        var phase2 = phase1 with
        {
            Ballot = bal,
            ValueOwnerSlot = value.ValueOwnerSlot,
            ValueOwnerGeneration = value.ValueOwnerGeneration,
            ValueMode = value.ValueMode,
        };
        WriteBallot(phase2);
        ballots = ReadBallots(resource);
        if (Beaten(ballots, version, bal))
        {
            return false;
        }

        chosen = phase2;
        return true;
    }

    private bool Beaten(LeaseBallot[] ballots, ulong version, ulong bal) =>
        ballots.Any(b => b.HostSlot != Me && (b.Version > version || (b.Version == version && b.MaxBallot > bal)));

    private void SetSharedMark(int resource, bool held)
    {
        var offset = Sb.BallotOffset(resource, Me);
        var mine = _io.ReadParsed(offset, s => LeaseBallot.Read(s, offset, resource, Me));
        WriteBallot(mine with { SharedHeld = held, SharedGeneration = held ? _host.Generation : 0 });
    }

    private void FreeLeader(HeldLease held) =>
        WriteLeader(new LeaseLeader
        {
            Resource = held.Resource,
            Mode = LeaseMode.Free,
            OwnerSlot = Me,
            OwnerGeneration = _host.Generation,
            Version = held.Version,
            AcquiredUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        });

    private void WriteBallot(LeaseBallot ballot)
    {
        var offset = Sb.BallotOffset(ballot.Resource, ballot.HostSlot);
        var sector = new byte[Sb.SectorSize];
        ballot.Write(sector, offset);
        _io.WriteSectors(offset, sector);
    }

    private void WriteLeader(LeaseLeader leader)
    {
        var offset = Sb.LeaderOffset(leader.Resource);
        var sector = new byte[Sb.SectorSize];
        leader.Write(sector, offset);
        _io.WriteSectors(offset, sector);
    }
}
