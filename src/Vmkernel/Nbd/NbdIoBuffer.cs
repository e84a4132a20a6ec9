using System.Runtime.InteropServices;

namespace Vmk.Vmkernel.Nbd;

/// <summary>
/// A page-aligned native buffer for one dispatched request: <see cref="HeadRoom"/> bytes for the reply header (or a
/// whole small reply), then the data area, which starts on a 4 KiB boundary. Aligned data lets an O_DIRECT device
/// (a VMFS datastore) transfer straight into or out of it instead of through a bounce buffer and a copy.
/// </summary>
internal sealed unsafe class NbdIoBuffer
{
    public const int HeadRoom = 4096;

    private NbdIoBuffer(int capacity)
    {
        Capacity = capacity;
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)capacity, 4096);
    }

    public byte* Pointer { get; private set; }

    /// <summary>Total bytes, head room included (a power of two).</summary>
    public int Capacity { get; }

    public int DataCapacity => Capacity - HeadRoom;

    public Span<byte> Span(int offset, int length) => new(Pointer + offset, length);

    public Span<byte> Data(int length) => new(Pointer + HeadRoom, length);

    internal static NbdIoBuffer Allocate(int capacity) => new(capacity);

    internal void Free()
    {
        NativeMemory.AlignedFree(Pointer);
        Pointer = null;
    }
}
