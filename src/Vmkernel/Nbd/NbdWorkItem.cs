namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// A request handed to the server's I/O threads. Pooled per connection; its buffer carries the write payload in
/// (at <see cref="NbdIoBuffer.HeadRoom"/>, page-aligned) and the reply out: read data stays where it was read, with
/// the reply header just in front, so a reply always leaves in one send from one place.
/// </summary>
internal sealed class NbdWorkItem
{
    private readonly NbdConnection _connection;

    public NbdWorkItem(NbdConnection connection) => _connection = connection;

    public NbdRequest Request { get; set; }

    public long StartTimestamp { get; set; }

    public NbdIoBuffer? Buffer { get; set; }

    /// <summary>Where in <see cref="Buffer"/> the reply starts, and how long it is.</summary>
    public int ReplyOffset { get; set; }

    public int ReplyLength { get; set; }

    /// <summary>Reply bytes reserved against the connection's send budget when the request was dispatched.</summary>
    public long ReplyCost { get; set; }

    public void Execute() => _connection.Execute(this);
}
