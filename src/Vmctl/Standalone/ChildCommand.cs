namespace Vmk.Vmctl.Standalone;

/// <summary>How to run one of the standalone children: the program and its arguments, and the network namespace it runs in.</summary>
internal sealed record ChildCommand(string FileName, IReadOnlyList<string> Arguments, string? NetworkNamespace = null)
{
    public ChildCommand With(params string[] more) => this with { Arguments = [.. Arguments, .. more] };

    public override string ToString() =>
        (NetworkNamespace is null ? "" : $"ip netns exec {NetworkNamespace} ") + string.Join(' ', [FileName, .. Arguments]);
}
