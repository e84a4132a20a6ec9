using Vmk.Vmkernel.Qemu;

namespace Vmk.Vmkernel.Migration;

/// <summary>
/// The directory QEMU's <c>tls-creds-x509</c> object reads, in its own file names. QEMU loads it when the object is
/// created over QMP, long after it dropped to the unprivileged QEMU user, so the copies are group-readable by that
/// user and by nobody else (the keys never become world-readable).
/// </summary>
internal static class MigrationTlsDirectory
{
    public static string Install(MigrationTlsFiles files, string stateDirectory, string? qemuUser)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new VmkernelException("migration TLS credentials are set up for QEMU on Linux only");
        }
        var dir = Path.Combine(stateDirectory, "migration-tls");
        Directory.CreateDirectory(dir);
        (string Source, string Name)[] copies =
        [
            (files.CaCertificate, "ca-cert.pem"),
            (files.ServerCertificate, "server-cert.pem"),
            (files.ServerKey, "server-key.pem"),
            (files.ClientCertificate, "client-cert.pem"),
            (files.ClientKey, "client-key.pem"),
        ];
        foreach (var (source, name) in copies)
        {
            if (!File.Exists(source))
            {
                throw new VmkernelException($"migration TLS: {source} does not exist; give the CA, server and client certificates and keys (vmkerneld certificates writes a set)");
            }
        }
        var gid = qemuUser is not null ? HostEnvironment.GroupId(qemuUser) : null;
        const UnixFileMode owner = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        foreach (var (source, name) in copies)
        {
            var target = Path.Combine(dir, name);
            var tmp = target + ".tmp";
            File.Copy(source, tmp, overwrite: true);
            File.SetUnixFileMode(tmp, owner | (gid is null ? 0 : UnixFileMode.GroupRead));
            if (gid is int g)
            {
                ProcessInterop.chown(tmp, 0, g);
            }
            File.Move(tmp, target, overwrite: true);
        }
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | (gid is null ? 0 : UnixFileMode.GroupRead | UnixFileMode.GroupExecute));
        if (gid is int dg)
        {
            ProcessInterop.chown(dir, 0, dg);
        }
        return dir;
    }
}
