using System.Security.Cryptography;
using Vmk.Vmkernel.Nbd;
using Vmk.Vmkernel.Storage;

namespace Vmk.Vmkernel.Tests.Nbd;

/// <summary>
/// An in-process <see cref="NbdServer"/> on a unix socket in a private temp directory, serving files made for the
/// test. Everything (server, devices, files, socket) is gone after disposal, whatever the test did.
/// </summary>
internal sealed class NbdTestServer : IAsyncDisposable
{
    private readonly List<IBlockDevice> _devices = [];

    public NbdTestServer(NbdServerOptions? options = null)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("vmk-nbd-").FullName;
        Logs = new RecordingLoggerFactory();
        Server = new NbdServer(options, Logs);
        SocketPath = Path.Combine(Directory, "nbd.sock");
        Listener = Server.ListenUnix(SocketPath);
    }

    public string Directory { get; }

    public string SocketPath { get; }

    public NbdServer Server { get; }

    public NbdListener Listener { get; }

    public RecordingLoggerFactory Logs { get; }

    public string Uri(string export) => $"nbd+unix:///{export}?socket={SocketPath}";

    /// <summary>A new sparse file of <paramref name="size"/> bytes (all holes), exported as <paramref name="name"/>.</summary>
    public string AddSparseExport(string name, long size, bool readOnly = false)
    {
        var path = Path.Combine(Directory, name + ".img");
        FileBlockDevice.Create(path, size).Dispose();
        return AddExistingFile(name, path, readOnly);
    }

    /// <summary>A file of random bytes, exported as <paramref name="name"/>.</summary>
    public string AddRandomExport(string name, int size, bool readOnly = false)
    {
        var path = TempFile(name + ".img");
        File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(size));
        return AddExistingFile(name, path, readOnly);
    }

    public string AddExistingFile(string name, string path, bool readOnly)
    {
        var device = FileBlockDevice.Open(path, readOnly);
        _devices.Add(device);
        Server.AddExport(name, device, readOnly);
        return path;
    }

    public string TempFile(string name) => Path.Combine(Directory, name);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Server.DisposeAsync();
        }
        finally
        {
            // Even if shutting the server down fails (the test then fails too), no file is left behind.
            foreach (var device in _devices)
            {
                device.Dispose();
            }

            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}
