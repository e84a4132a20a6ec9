using System.Diagnostics;
using System.Text.Json;

namespace Vmk.Vmctl.Tests;

/// <summary>`vmctl disk import/export` as a user runs them: the real binary, qemu-img, a datastore file.</summary>
public sealed class DiskCommandsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vmctl-disk-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Ds => Path.Combine(_dir, "ds.vmfs");

    private string At(string name) => Path.Combine(_dir, name);

    [Fact]
    public void A_qcow2_image_imported_and_exported_again_is_identical_and_stays_thin()
    {
        Assert.Equal(0, Vmctl(out _, out _, "ds", "format", Ds, "--size", "512M"));
        Run("qemu-img", "create", "-f", "qcow2", At("src.qcow2"), "100M");
        Run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 10M 3M", "-c", "write -P 0x11 90M 1M", At("src.qcow2"));

        Assert.Equal(0, Vmctl(out var imported, out var importErrors, "disk", "import", At("src.qcow2"), "--datastore", Ds, "--name", "web1"));
        Assert.Equal(0, Vmctl(out var listing, out _, "ds", "ls", Ds, "-o", "json"));
        Assert.Equal(0, Vmctl(out var exported, out _, "disk", "export", At("out.vmdk"), "--datastore", Ds, "--name", "web1"));
        Assert.Equal(0, Vmctl(out _, out _, "disk", "export", At("out.raw"), "--datastore", Ds, "--name", "web1"));

        Assert.Contains("as 'web1'", imported);
        Assert.Equal("", importErrors);
        var disk = JsonDocument.Parse(listing).RootElement.EnumerateArray().Single();
        Assert.Equal(100L << 20, disk.GetProperty("sizeBytes").GetInt64());
        Assert.Equal(4L << 20, disk.GetProperty("allocatedBytes").GetInt64()); // only the blocks that hold data
        Assert.Contains("(vmdk", exported);
        Assert.Contains("Images are identical", Run("qemu-img", "compare", At("src.qcow2"), At("out.vmdk")));
        Assert.Contains("Images are identical", Run("qemu-img", "compare", "-F", "raw", At("src.qcow2"), At("out.raw")));
        Assert.False(File.Exists(At("out.vmdk.partial")));
    }

    [Fact]
    public void Bad_input_is_refused_with_a_clear_message_and_changes_nothing()
    {
        Assert.Equal(0, Vmctl(out _, out _, "ds", "format", Ds, "--size", "256M"));
        Run("qemu-img", "create", "-f", "raw", At("src.raw"), "8M");
        Assert.Equal(0, Vmctl(out _, out _, "disk", "import", At("src.raw"), "--datastore", Ds, "--name", "d1"));
        File.WriteAllText(At("taken.qcow2"), "keep me");

        Assert.Equal(1, Vmctl(out _, out var missing, "disk", "import", At("nope.qcow2"), "--datastore", Ds, "--name", "d2"));
        Assert.Equal(1, Vmctl(out _, out var duplicate, "disk", "import", At("src.raw"), "--datastore", Ds, "--name", "d1"));
        Assert.Equal(1, Vmctl(out _, out var tooBig, "disk", "import", At("src.raw"), "--datastore", Ds, "--name", "big", "--format", "qcow2"));
        Assert.Equal(1, Vmctl(out _, out var exists, "disk", "export", At("taken.qcow2"), "--datastore", Ds, "--name", "d1"));
        Assert.Equal(1, Vmctl(out _, out var noDisk, "disk", "export", At("x.qcow2"), "--datastore", Ds, "--name", "ghost"));
        Assert.Equal(0, Vmctl(out var listing, out _, "ds", "ls", Ds, "-o", "json"));

        Assert.Contains("does not exist", missing);
        Assert.Contains("already exists", duplicate);
        Assert.Contains("qemu-img cannot read", tooBig); // a raw file read as qcow2
        Assert.Contains("--force", exists);
        Assert.Equal("keep me", File.ReadAllText(At("taken.qcow2")));
        Assert.Contains("ghost", noDisk);
        Assert.Equal(["d1"], JsonDocument.Parse(listing).RootElement.EnumerateArray().Select(d => d.GetProperty("name").GetString()));
    }

    private static string Run(string tool, params string[] args)
    {
        var info = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish");
        }

        Assert.True(process.ExitCode == 0 || tool == "qemu-img" && args[0] == "compare", $"{tool} failed: {error.Result}");
        return output.Result;
    }

    private static int Vmctl(out string stdout, out string stderr, params string[] args)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "vmctl.dll"));
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["COLUMNS"] = "200";
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"vmctl {string.Join(' ', args)} did not finish");
        }

        stdout = output.Result;
        stderr = error.Result;
        return process.ExitCode;
    }
}
