using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Spectre.Console;
using Vmk.Vmkernel.Nbd;
using Vmk.Vmkernel.Storage;
using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmctl.Commands;

/// <summary>
/// `vmctl disk`: move virtual disks in and out of a datastore. The bytes travel the way a VM's do: the VMFS disk
/// is served by the VMkernel's NBD server (in this process, on a private unix socket) and qemu-img converts
/// between it and any image format qemu-img knows (qcow2, vmdk, vhdx, raw...).
/// </summary>
internal static partial class DiskCommands
{
    public static Command Create()
    {
        var command = new Command("disk", "Move virtual disks in and out of a datastore");
        command.Subcommands.Add(Import());
        command.Subcommands.Add(Export());
        return command;
    }

    private static Option<string> DatastoreOption() => new("--datastore", "--ds")
    {
        Description = "VMFS datastore (device or file)",
        Required = true,
    };

    private static Option<string> NameOption(string description) => new("--name") { Description = description, Required = true };

    private static Option<string> HostOption() => new("--host")
    {
        Description = "Host name this command joins the datastore as",
        DefaultValueFactory = _ => $"vmctl-{Environment.MachineName}",
    };

    private static Command Import()
    {
        var file = new Argument<string>("file") { Description = "Image to import: any format qemu-img reads (qcow2, vmdk, vhdx, raw...)" };
        var datastore = DatastoreOption();
        var name = NameOption("Name of the new virtual disk");
        var format = new Option<string?>("--format", "-f") { Description = "Format of FILE (default: detected by qemu-img)" };
        var thick = new Option<bool>("--thick") { Description = "Allocate the whole disk now instead of on first write" };
        var host = HostOption();
        var command = new Command("import", "Convert an image into a new VMFS virtual disk") { file, datastore, name, format, thick, host };
        command.SetAction((r, ct) => RunAsync(async () =>
        {
            var source = Path.GetFullPath(r.GetValue(file)!);
            if (!File.Exists(source))
            {
                throw new UserError($"image '{source}' does not exist.");
            }

            var (virtualSize, sourceFormat) = await QemuImgInfoAsync(source, r.GetValue(format), ct);
            var diskName = r.GetValue(name)!;
            using var ds = VmfsDatastore.Open(r.GetValue(datastore)!, r.GetValue(host)!);
            var created = ds.CreateDisk(diskName, virtualSize, thin: !r.GetValue(thick));
            bool imported = false;
            try
            {
                using (var disk = ds.OpenDisk(diskName, LeaseMode.Exclusive))
                {
                    await ServeAsync(disk, diskName, readOnly: false, uri => ConvertAsync(
                        ["convert", "-p", "-n", "--target-is-zero", "-f", sourceFormat, "-O", "raw", source, uri],
                        $"importing {Path.GetFileName(source)}", ct));
                    disk.Flush();
                }

                imported = true;
            }
            finally
            {
                if (!imported)
                {
                    // A half-imported disk is worse than none: the source is untouched, so the user can simply retry.
                    TryDelete(ds, diskName);
                }
            }

            var disk2 = ds.List().First(d => d.Name == diskName);
            Console.WriteLine($"imported {source} ({sourceFormat}, {Human(virtualSize)}) as '{diskName}': {Human(disk2.AllocatedBytes)} allocated{(created.Thin ? ", thin" : ", thick")}");
            return 0;
        }));
        return command;
    }

    private static Command Export()
    {
        var file = new Argument<string>("file") { Description = "Image file to write" };
        var datastore = DatastoreOption();
        var name = NameOption("Virtual disk to export");
        var format = new Option<string?>("--format", "-O") { Description = "Output format (default: from the file extension: .qcow2, .vmdk, .vhdx, .raw/.img; else qcow2)" };
        var force = new Option<bool>("--force") { Description = "Replace FILE if it exists" };
        var host = HostOption();
        var command = new Command("export", "Convert a VMFS virtual disk into an image file") { file, datastore, name, format, force, host };
        command.SetAction((r, ct) => RunAsync(async () =>
        {
            var destination = Path.GetFullPath(r.GetValue(file)!);
            if (File.Exists(destination) && !r.GetValue(force))
            {
                throw new UserError($"'{destination}' already exists; pass --force to replace it.");
            }

            var outputFormat = r.GetValue(format) ?? FormatFromExtension(destination);
            var diskName = r.GetValue(name)!;
            var partial = destination + ".partial";
            using var ds = VmfsDatastore.Open(r.GetValue(datastore)!, r.GetValue(host)!);
            using (var disk = ds.OpenDisk(diskName, LeaseMode.SharedRead))
            {
                try
                {
                    await ServeAsync(disk, diskName, readOnly: true, uri => ConvertAsync(
                        ["convert", "-p", "-f", "raw", "-O", outputFormat, uri, partial],
                        $"exporting {diskName}", ct));
                }
                catch
                {
                    File.Delete(partial);
                    throw;
                }
            }

            // Written under a temporary name and moved into place: an interrupted export never leaves a torn image.
            File.Move(partial, destination, overwrite: true);
            Console.WriteLine($"exported '{diskName}' to {destination} ({outputFormat}, {Human(new FileInfo(destination).Length)} on disk)");
            return 0;
        }));
        return command;
    }

    /// <summary>Serves <paramref name="disk"/> on a private unix socket for the duration of <paramref name="use"/>.</summary>
    private static async Task ServeAsync(IBlockDevice disk, string exportName, bool readOnly, Func<string, Task> use)
    {
        var directory = Directory.CreateTempSubdirectory("vmctl-disk-");
        try
        {
            await using var server = new NbdServer();
            server.AddExport(exportName, disk, readOnly);
            var socket = Path.Combine(directory.FullName, "nbd.sock");
            await using var listener = server.ListenUnix(socket);
            await use($"nbd+unix:///{Uri.EscapeDataString(exportName)}?socket={socket}");
            await server.RemoveExportAsync(exportName);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static async Task<(long VirtualSize, string Format)> QemuImgInfoAsync(string image, string? format, CancellationToken ct)
    {
        var arguments = new List<string> { "info", "--output=json" };
        if (format is not null)
        {
            arguments.AddRange(["-f", format]);
        }

        arguments.Add(image);
        var (exitCode, stdout, stderr) = await RunToolAsync("qemu-img", arguments, onOutput: null, ct);
        if (exitCode != 0)
        {
            throw new UserError($"qemu-img cannot read '{image}': {stderr.Trim()}");
        }

        using var json = JsonDocument.Parse(stdout);
        return (json.RootElement.GetProperty("virtual-size").GetInt64(), json.RootElement.GetProperty("format").GetString()!);
    }

    /// <summary>Runs qemu-img convert -p, showing its progress as a bar (or nothing when output is redirected).</summary>
    private static async Task ConvertAsync(IReadOnlyList<string> arguments, string description, CancellationToken ct)
    {
        int exitCode;
        string stderr;
        if (Console.IsOutputRedirected)
        {
            (exitCode, _, stderr) = await RunToolAsync("qemu-img", arguments, onOutput: null, ct);
        }
        else
        {
            (exitCode, stderr) = await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask(Markup.Escape(description), maxValue: 100);
                    var (code, _, error) = await RunToolAsync("qemu-img", arguments, text =>
                    {
                        foreach (Match match in ProgressPattern().Matches(text))
                        {
                            task.Value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                        }
                    }, ct);
                    if (code == 0)
                    {
                        task.Value = 100;
                    }

                    return (code, error);
                });
        }

        if (exitCode != 0)
        {
            throw new UserError($"qemu-img convert failed: {stderr.Trim()}");
        }
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunToolAsync(
        string tool, IEnumerable<string> arguments, Action<string>? onOutput, CancellationToken ct)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new UserError($"cannot run {tool} ({e.Message}); install qemu-utils.");
        }

        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync(ct);
            var stdout = new StringBuilder();
            var buffer = new char[4096];
            int read;
            while ((read = await process.StandardOutput.ReadAsync(buffer, ct)) > 0)
            {
                var text = new string(buffer, 0, read);
                stdout.Append(text);
                onOutput?.Invoke(text);
            }

            try
            {
                await process.WaitForExitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            return (process.ExitCode, stdout.ToString(), await stderr);
        }
    }

    private static string FormatFromExtension(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".raw" or ".img" => "raw",
        ".vmdk" => "vmdk",
        ".vhdx" => "vhdx",
        ".vdi" => "vdi",
        _ => "qcow2",
    };

    private static void TryDelete(VmfsDatastore ds, string name)
    {
        try
        {
            ds.DeleteDisk(name);
        }
        catch (VmfsException e)
        {
            Console.Error.WriteLine($"warning: could not remove the half-imported disk '{name}': {e.Message}");
        }
    }

    private static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e) when (e is UserError or VmfsException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static string Human(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F1} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };

    [GeneratedRegex(@"\((\d+(?:\.\d+)?)/100%\)")]
    private static partial Regex ProgressPattern();

    /// <summary>A problem the user can fix, reported as one line without a stack trace.</summary>
    private sealed class UserError(string message) : Exception(message);
}
