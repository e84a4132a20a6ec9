namespace Vmk.Vmkernel.Vmfs;

/// <summary>What fsck found and, with --repair, what it fixed.</summary>
public sealed record FsckReport(string Path, IReadOnlyList<FsckFinding> Findings, IReadOnlyList<string> Repairs)
{
    /// <summary>No errors (notices such as a pending journal do not count).</summary>
    public bool Clean => Findings.All(f => !f.IsError);
}
