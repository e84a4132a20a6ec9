using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Tests.Vmfs;

/// <summary>Processes killed in the middle of metadata changes leave a datastore that fsck finds clean after replay.</summary>
[Trait("Category", "Slow")]
public class VmfsCrashTests
{
    [Theory]
    [InlineData("data-written")]
    [InlineData("journal-images-written")]
    [InlineData("journal-committed")]
    [InlineData("journal-half-applied")]
    [InlineData("journal-applied")]
    public void A_crash_at_each_journal_step_is_consistent_after_replay(string step)
    {
        using var temp = new TempDatastore(128L << 20);
        var seed = Random.Shared.Next();
        var n = Random.Shared.Next(2, 8);
        using (var churn = HostProcess.Start(new Dictionary<string, string> { ["VMFS_CRASH_AT"] = $"{step}:{n}" }, "churn", temp.FilePath, $"{seed}"))
        {
            churn.WaitFor($"CRASHING at {step}", TimeSpan.FromSeconds(120));
            Assert.True(churn.WaitForExit(TimeSpan.FromSeconds(10)));
        }

        var before = VmfsFsck.Check(temp.FilePath);
        Assert.True(before.Clean, $"seed {seed}, {step}:{n}: " + Describe(before));
        if (step is "journal-committed" or "journal-half-applied" or "journal-applied")
        {
            Assert.Contains(before.Findings, f => f.Structure == "journal" && !f.IsError);
        }

        AssertCleanAfterReplay(temp, $"seed {seed}, {step}:{n}");
    }

    [Fact]
    public void Processes_killed_at_random_moments_of_metadata_churn_leave_a_consistent_datastore()
    {
        using var temp = new TempDatastore(128L << 20);
        for (var round = 0; round < 4; round++)
        {
            var seed = Random.Shared.Next();
            using (var churn = HostProcess.Start("churn", temp.FilePath, $"{seed}"))
            {
                churn.WaitFor("READY", TimeSpan.FromSeconds(60));
                churn.WaitFor($"OPS {Random.Shared.Next(1, 4) * 10}", TimeSpan.FromSeconds(120));
                churn.Signal(HostProcess.SigKill);
                Assert.True(churn.WaitForExit(TimeSpan.FromSeconds(10)));
            }

            var report = VmfsFsck.Check(temp.FilePath);
            Assert.True(report.Clean, $"round {round}, seed {seed}: " + Describe(report));
            AssertCleanAfterReplay(temp, $"round {round}, seed {seed}");
        }
    }

    private static void AssertCleanAfterReplay(TempDatastore temp, string context)
    {
        using (var ds = temp.Join("replayer"))
        {
            // Joining replays; a change needs the metadata lock, which waits out the dead host's lease. Rounds of
            // churn can fill the datastore: a refusal for space comes from inside the metadata transaction, so the
            // lock was taken and the replayed metadata read all the same.
            try
            {
                ds.CreateDisk($"after-{Guid.NewGuid():N}", 1 << 20);
            }
            catch (VmfsException e) when (e.Code == VmfsErrorCode.NoSpace)
            {
            }
        }

        var after = VmfsFsck.Check(temp.FilePath);
        Assert.True(after.Clean && after.Findings.Count == 0, $"{context}: after replay: " + Describe(after));
    }

    private static string Describe(FsckReport report) =>
        string.Join("; ", report.Findings.Select(f => $"{f.Structure} @{f.Offset}: {f.Problem}"));
}
