using System.Diagnostics;
using System.Text.Json;

namespace Vmk.Vmctl.Tests;

/// <summary>`vmctl ds` run as a user runs it: the real binary, a datastore file, no daemon.</summary>
public sealed class DsCommandsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"vmctl-ds-{Guid.NewGuid():N}");

    public DsCommandsTests() => Directory.CreateDirectory(_dir);

    private string Ds => Path.Combine(_dir, "ds.vmfs");

    [Fact]
    public void Format_create_clone_list_lock_check_and_delete_work_on_a_file()
    {
        Assert.Equal(0, Vmctl(out _, out _, "ds", "format", Ds, "--size", "256M", "--max-files", "32", "--max-hosts", "4", "--label", "lab"));
        Assert.Equal(0, Vmctl(out var created, out _, "ds", "disk", "create", Ds, "golden", "--size", "64M"));
        Assert.Contains("64.0 MiB provisioned, 0 B allocated, thin", created);
        Assert.Equal(0, Vmctl(out _, out _, "ds", "disk", "create", Ds, "fat", "--size", "8M", "--thick"));
        Assert.Equal(0, Vmctl(out _, out _, "ds", "disk", "clone", Ds, "golden", "vm1"));
        Assert.Equal(0, Vmctl(out _, out _, "ds", "disk", "resize", Ds, "fat", "--size", "16M"));

        Assert.Equal(0, Vmctl(out var json, out _, "ds", "ls", Ds, "-o", "json"));
        var disks = JsonDocument.Parse(json).RootElement.EnumerateArray().ToDictionary(d => d.GetProperty("name").GetString()!);
        Assert.Equal(["fat", "golden", "vm1"], disks.Keys.Order());
        Assert.Equal(16L << 20, disks["fat"].GetProperty("allocatedBytes").GetInt64());
        Assert.True(disks["golden"].GetProperty("readOnlyBase").GetBoolean());
        Assert.Equal("golden", disks["vm1"].GetProperty("base").GetString());

        Assert.Equal(0, Vmctl(out var info, out _, "ds", "info", Ds, "-o", "json"));
        var root = JsonDocument.Parse(info).RootElement;
        Assert.Equal("lab", root.GetProperty("label").GetString());
        Assert.Equal(3, root.GetProperty("disks").GetInt32());

        Assert.Equal(0, Vmctl(out var locks, out _, "ds", "locks", Ds));
        Assert.Contains("metadata", locks);
        Assert.Equal(0, Vmctl(out var fsck, out _, "ds", "fsck", Ds));
        Assert.Contains("clean", fsck);

        Assert.Equal(1, Vmctl(out _, out var refused, "ds", "disk", "rm", Ds, "golden"));
        Assert.Contains("linked clone", refused);
        Assert.Equal(0, Vmctl(out _, out _, "ds", "disk", "rm", Ds, "vm1"));
        Assert.Equal(0, Vmctl(out _, out _, "ds", "disk", "rm", Ds, "golden"));
    }

    [Fact]
    public void Bad_input_gives_a_clear_error_and_a_failing_exit_code()
    {
        Assert.Equal(1, Vmctl(out _, out var small, "ds", "format", Ds, "--size", "1M"));
        Assert.Contains("needs at least", small);
        Assert.False(File.Exists(Ds));

        File.WriteAllText(Ds, new string('x', 100_000));
        Assert.Equal(1, Vmctl(out _, out var notDs, "ds", "info", Ds));
        Assert.Contains("not a VMFS datastore", notDs);

        Assert.Equal(2, Vmctl(out _, out var size, "ds", "disk", "create", Ds, "d", "--size", "lots"));
        Assert.Contains("is not a size", size);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static int Vmctl(out string stdout, out string stderr, params string[] args)
    {
        var (code, output, error) = VmctlProcess.RunAsync(args).GetAwaiter().GetResult();
        stdout = output;
        stderr = error;
        return code;
    }
}
