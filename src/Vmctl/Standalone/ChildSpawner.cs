using System.Collections.Concurrent;
using System.Diagnostics;

namespace Vmk.Vmctl.Standalone;

/// <summary>
/// Starts child processes from one thread that lives as long as vmctl. The children are started through
/// <c>setpriv --pdeathsig KILL</c>, and the kernel sends that signal when the <em>thread</em> that forked them exits,
/// not the process: forking from a thread-pool thread (which retires when idle) would kill healthy children.
/// </summary>
internal static class ChildSpawner
{
    private static readonly BlockingCollection<(ProcessStartInfo Info, TaskCompletionSource<Process> Done)> Requests = new();

    static ChildSpawner()
    {
        var thread = new Thread(Run) { IsBackground = true, Name = "vmctl-child-spawner" };
        thread.Start();
    }

    public static Task<Process> StartAsync(ProcessStartInfo info)
    {
        var done = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        Requests.Add((info, done));
        return done.Task;
    }

    private static void Run()
    {
        foreach (var (info, done) in Requests.GetConsumingEnumerable())
        {
            try
            {
                done.SetResult(Process.Start(info) ?? throw new InvalidOperationException($"could not start {info.FileName}"));
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }
    }
}
