namespace Vmk.Vmkernel.Nbd;

/// <summary>Tuning and limits of an <see cref="NbdServer"/>. The defaults suit the VMkernel serving its own QEMUs.</summary>
public sealed record NbdServerOptions
{
    /// <summary>
    /// READ and WRITE requests up to this length (without FUA) are served on the connection's reader thread and their
    /// replies batched into one send per received batch of requests, as long as the device answers them within
    /// <see cref="InlineLatencyLimit"/> (page-cache speed). Longer ones, FUA, flush, trim, write-zeroes and block
    /// status, and everything while the device is slow, go to the I/O threads so they overlap. 0 disables inlining.
    /// </summary>
    public int InlineMaxLength { get; init; } = 64 * 1024;

    /// <summary>
    /// Average device time of a short request above which a connection stops serving requests inline (real disk
    /// I/O, e.g. O_DIRECT on a VMFS datastore, must run in parallel); below half of it, inlining resumes.
    /// </summary>
    public TimeSpan InlineLatencyLimit { get; init; } = TimeSpan.FromMicroseconds(50);

    /// <summary>Threads running dispatched requests, for all connections together (the deepest queue a disk sees).</summary>
    public int IoThreads { get; init; } = 64;

    /// <summary>
    /// Reads that are not served inline go from the device's file to the socket with sendfile(2) when the device is
    /// an <see cref="Storage.IFileBackedBlockDevice"/> and maps the range: no copy through user space.
    /// </summary>
    public bool ZeroCopyReads { get; init; } = true;

    /// <summary>
    /// Inline replies collected before they are sent even if more requests are waiting to be parsed: small values
    /// answer sooner, large ones make fewer system calls.
    /// </summary>
    public int MaxRepliesPerBatch { get; init; } = 64;

    /// <summary>Requests of one connection handed to the I/O threads and not yet answered; the reader waits beyond it.</summary>
    public int MaxInFlightPerConnection { get; init; } = 64;

    /// <summary>Connections the server accepts at once (handshaking or transmitting); more are closed on accept.</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>A client must finish option haggling within this time.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A client that does not take its replies for this long is disconnected.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Bytes received per system call at most (requests are parsed out of this buffer).</summary>
    public int ReceiveBufferSize { get; init; } = 256 * 1024;

    internal void Validate()
    {
        if (InlineMaxLength < 0 || InlineMaxLength > 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(InlineMaxLength), InlineMaxLength, "must be between 0 and 1 MiB");
        }

        if (MaxInFlightPerConnection < 1 || MaxConnections < 1 || MaxRepliesPerBatch < 1 || IoThreads < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxInFlightPerConnection), "limits must be at least 1");
        }

        if (ReceiveBufferSize < 2 * (InlineMaxLength + NbdProtocol.RequestHeaderLength) || ReceiveBufferSize < 64 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(ReceiveBufferSize), ReceiveBufferSize,
                "must be at least 64 KiB and hold two inline write requests");
        }
    }
}
