namespace Vmk.Operator.Tests;

/// <summary>
/// The network between one client and the real API server, made to fail on demand: <see cref="Partition"/> cuts
/// every open response stream (a watch sees its connection drop mid-stream) and refuses new requests until
/// <see cref="Heal"/>. Requests that pass reach the real server unchanged; nothing of the API is imitated.
/// </summary>
public sealed class FlakyNetwork : DelegatingHandler
{
    private readonly Lock _gate = new();
    private CancellationTokenSource _cut = new();
    private volatile bool _partitioned;

    public void Partition()
    {
        CancellationTokenSource old;
        lock (_gate)
        {
            _partitioned = true;
            old = _cut;
            _cut = new CancellationTokenSource();
        }
        old.Cancel();
        old.Dispose();
    }

    public void Heal() => _partitioned = false;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        if (_partitioned)
        {
            throw new HttpRequestException("network partitioned (test)");
        }
        CancellationToken cut;
        lock (_gate)
        {
            cut = _cut.Token;
        }
        var response = await base.SendAsync(request, ct);
        var original = response.Content;
        var stream = await original.ReadAsStreamAsync(ct);
        var content = new StreamContent(new CuttableStream(stream, cut, response));
        foreach (var header in original.Headers)
        {
            content.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
        response.Content = content;
        return response;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cut.Dispose();
        }
        base.Dispose(disposing);
    }

    private sealed class CuttableStream(Stream inner, CancellationToken cut, HttpResponseMessage response) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, cut);
            try
            {
                return await inner.ReadAsync(buffer, linked.Token);
            }
            catch (OperationCanceledException) when (cut.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                response.Dispose();
                throw new IOException("connection reset (test network partition)");
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct)
            => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (cut.IsCancellationRequested)
            {
                throw new IOException("connection reset (test network partition)");
            }
            return inner.Read(buffer, offset, count);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
