using System.Text.RegularExpressions;

namespace Vmk.Packaging.Tests;

/// <summary>
/// No container engine runs on this machine, so the Dockerfile is checked as text: pinned base images, both
/// targets, users, entry points that match the binaries' assembly names, and build inputs that exist.
/// </summary>
public sealed partial class DockerfileTests
{
    private sealed record Stage(string Image, string Name, List<string> Lines);

    private static List<Stage> Stages()
    {
        // Join continuation lines, drop comments.
        var text = Regex.Replace(Repo.Read("Dockerfile"), @"\\\r?\n", " ");
        var stages = new List<Stage>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var from = From().Match(line);
            if (from.Success)
            {
                stages.Add(new Stage(from.Groups[1].Value, from.Groups[2].Value, []));
            }
            else
            {
                Assert.True(stages.Count > 0, "instruction before the first FROM: " + line);
                stages[^1].Lines.Add(line);
            }
        }
        return stages;
    }

    [Fact]
    public void Base_images_are_pinned_to_exact_releases_or_digests()
    {
        var stages = Stages();
        var names = stages.Select(s => s.Name).ToHashSet();
        foreach (var s in stages.Where(s => !names.Contains(s.Image)))
        {
            Assert.True(Pinned().IsMatch(s.Image), $"base image {s.Image} of stage {s.Name} is not pinned (need @sha256:<digest> or an exact version tag like 10.0.0 or 12.11)");
            Assert.DoesNotContain(":latest", s.Image, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Operator_and_vmkerneld_targets_exist_with_their_users_and_entry_points()
    {
        var stages = Stages().ToDictionary(s => s.Name);
        Assert.Contains("operator", stages.Keys);
        Assert.Contains("vmkerneld", stages.Keys);

        var op = stages["operator"].Lines;
        var user = op.Last(l => l.StartsWith("USER ", StringComparison.Ordinal))["USER ".Length..].Split(':')[0];
        Assert.True(int.TryParse(user, out var uid) && uid != 0, $"operator image runs as '{user}', not as a numeric non-root user");
        Assert.Contains(op, l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal) && l.Contains($"{AssemblyName("src/Operator/Operator.csproj")}.dll", StringComparison.Ordinal));

        var daemon = stages["vmkerneld"].Lines;
        Assert.Contains(daemon, l => l.StartsWith("RUN ", StringComparison.Ordinal) && l.Contains("qemu-system-x86", StringComparison.Ordinal));
        Assert.Contains(daemon, l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal) && l.Contains($"/{AssemblyName("src/NodeDaemon/NodeDaemon.csproj")}\"", StringComparison.Ordinal));

        // The chart's images are these targets.
        var values = Repo.Read("charts", "vmkernel-operator", "values.yaml");
        Assert.Contains("repository: ghcr.io/vmkernel/vm-operator", values);
        Assert.Contains("repository: ghcr.io/vmkernel/vmkerneld", values);
    }

    [Fact]
    public void Build_inputs_exist_and_are_not_ignored()
    {
        var ignored = Repo.Read(".dockerignore").Split('\n').Select(l => l.Trim().TrimEnd('/')).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet();
        foreach (var line in Stages().SelectMany(s => s.Lines).Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from=", StringComparison.Ordinal)))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Where(p => !p.StartsWith("--", StringComparison.Ordinal)).ToList();
            foreach (var source in parts.Take(parts.Count - 1))
            {
                var path = source.TrimEnd('/');
                Assert.True(File.Exists(Repo.PathOf(path)) || Directory.Exists(Repo.PathOf(path)), $"COPY source {source} does not exist");
                Assert.DoesNotContain(path, ignored);
            }
        }
    }

    private static string AssemblyName(string csproj) =>
        Regex.Match(Repo.Read(csproj), "<AssemblyName>([^<]+)</AssemblyName>").Groups[1].Value;

    [GeneratedRegex(@"^FROM\s+(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)$", RegexOptions.IgnoreCase)]
    private static partial Regex From();

    [GeneratedRegex(@"(@sha256:[0-9a-f]{64}$)|(:\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$)")]
    private static partial Regex Pinned();
}
