using System.Globalization;

namespace Vmk.Vmkernel;

/// <summary>
/// One VMkernel per state directory. Two would both serve <c>nbd.sock</c>, both adopt the same QEMUs and, on a
/// datastore, both claim to be this host. The lock is an exclusive <c>flock</c> on <c>vmkernel.lock</c> (what .NET
/// takes for <see cref="FileShare.None"/> on Unix), so the kernel drops it when the holder dies, however it dies;
/// the holder's pid goes into <c>vmkernel.pid</c> beside it so that the refusal can name it.
/// </summary>
internal sealed class StateDirectoryLock : IDisposable
{
    private readonly FileStream _lock;
    private readonly string _pidFile;

    private StateDirectoryLock(FileStream lockFile, string pidFile)
    {
        _lock = lockFile;
        _pidFile = pidFile;
    }

    public static StateDirectoryLock Acquire(string stateDirectory)
    {
        var lockPath = Path.Combine(stateDirectory, "vmkernel.lock");
        var pidPath = Path.Combine(stateDirectory, "vmkernel.pid");
        FileStream stream;
        try
        {
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            var holder = ReadHolder(pidPath);
            throw new VmkernelException(
                $"state directory {stateDirectory} is in use by another VMkernel{holder}: one VMkernel (vmkerneld or vmctl) per state "
                + "directory. Talk to the running one, stop it first, or use another --state-dir.");
        }
        File.WriteAllText(pidPath, Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        return new StateDirectoryLock(stream, pidPath);
    }

    public void Dispose()
    {
        try
        {
            File.Delete(_pidFile);
        }
        catch (IOException)
        {
            // The lock, not the pid file, is what counts; a stale pid file only makes a refusal message less exact.
        }
        _lock.Dispose();
    }

    private static string ReadHolder(string pidPath)
    {
        try
        {
            var text = File.ReadAllText(pidPath).Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? $" (pid {pid})" : "";
        }
        catch (IOException)
        {
            return "";
        }
    }
}
