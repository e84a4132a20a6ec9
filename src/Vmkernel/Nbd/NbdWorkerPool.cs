namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// Threads that run dispatched requests. Device calls block (fsync, O_DIRECT reads of a VMFS datastore), so they
/// get threads of their own rather than the shared .NET thread pool, whose slow thread injection would cap the
/// queue depth the disk sees. Threads start on demand up to the limit and stay for the server's lifetime.
/// </summary>
internal sealed class NbdWorkerPool : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<NbdWorkItem> _queue = new();
    private readonly SemaphoreSlim _available = new(0);
    private readonly List<Thread> _threads = [];
    private readonly int _maxThreads;
    private int _idle;
    private int _queued;
    private volatile bool _stopping;

    public NbdWorkerPool(int maxThreads) => _maxThreads = maxThreads;

    public void Enqueue(NbdWorkItem item)
    {
        _queue.Enqueue(item);
        if (Interlocked.Increment(ref _queued) > Volatile.Read(ref _idle))
        {
            StartThreadIfBelowLimit(); // more work waiting than threads waiting for it
        }

        _available.Release();
    }

    public void Dispose()
    {
        Thread[] threads;
        lock (_threads)
        {
            _stopping = true;
            threads = [.. _threads];
        }

        if (threads.Length > 0)
        {
            _available.Release(threads.Length);
        }
        foreach (var thread in threads)
        {
            thread.Join();
        }

        _available.Dispose();
    }

    private void StartThreadIfBelowLimit()
    {
        lock (_threads)
        {
            if (_stopping || _threads.Count >= _maxThreads)
            {
                return;
            }

            var thread = new Thread(Work, maxStackSize: 256 * 1024) { IsBackground = true, Name = $"nbd-io-{_threads.Count + 1}" };
            _threads.Add(thread);
            thread.Start();
        }
    }

    private void Work()
    {
        while (true)
        {
            Interlocked.Increment(ref _idle);
            _available.Wait();
            Interlocked.Decrement(ref _idle);
            if (_queue.TryDequeue(out var item))
            {
                Interlocked.Decrement(ref _queued);
                item.Execute();
            }
            else if (_stopping)
            {
                return;
            }
        }
    }
}
