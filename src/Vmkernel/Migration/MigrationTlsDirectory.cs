using Vmk.Vmkernel.Qemu;

namespace Vmk.Vmkernel.Migration;

/// <summary>
/// The directory QEMU's <c>tls-creds-x509</c> object reads, in its own file names. QEMU loads it when the object is
/// created over QMP, long after it dropped to the unprivileged QEMU user, so the copies are group-readable by that
/// user and by nobody else (the keys never become world-readable).
/// </summary>
public static class MigrationTlsDirectory
{
    /// <summary>
    /// RFC 7919's ffdhe2048 group (PKCS#3). QEMU's server credentials read dh-params.pem from the directory and,
    /// without one, generate fresh 2048-bit parameters inside object-add: 0.8-4 s added to every incoming
    /// migration's preparation. A named standard group is what TLS libraries use themselves.
    /// </summary>
    public const string DhParameters =
        "-----BEGIN DH PARAMETERS-----\n" +
        "MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n" +
        "+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n" +
        "87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n" +
        "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n" +
        "7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n" +
        "ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==\n" +
        "-----END DH PARAMETERS-----\n";

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
        var dh = Path.Combine(dir, "dh-params.pem");
        File.WriteAllText(dh + ".tmp", DhParameters);
        File.SetUnixFileMode(dh + ".tmp", owner | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.Move(dh + ".tmp", dh, overwrite: true);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | (gid is null ? 0 : UnixFileMode.GroupRead | UnixFileMode.GroupExecute));
        if (gid is int dg)
        {
            ProcessInterop.chown(dir, 0, dg);
        }
        return dir;
    }
}
