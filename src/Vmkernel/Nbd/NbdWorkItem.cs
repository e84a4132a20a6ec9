using System.Buffers;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// A request handed to the server's I/O threads. Pooled per connection; its buffer (rented) carries the write payload in and
/// the reply out, with room in front of read data for the reply header so the reply goes out in one send.
/// </summary>
internal sealed class NbdWorkItem
{
    private readonly NbdConnection _connection;

    public NbdWorkItem(NbdConnection connection) => _connection = connection;

    public NbdRequest Request { get; set; }

    public long StartTimestamp { get; set; }

    /// <summary>Rented buffer, or empty between uses.</summary>
    public byte[] Buffer { get; private set; } = [];

    /// <summary>Bytes of <see cref="Buffer"/> that make up the reply once the request is done.</summary>
    public int ReplyLength { get; set; }

    public void RentBuffer(int length) => Buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 256));

    public void ReturnBuffer()
    {
        if (Buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = [];
        }
    }

    public void Execute() => _connection.Execute(this);
}
