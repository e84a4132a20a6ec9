using System.Runtime.InteropServices;

namespace Vmk.Vmkernel.Vmfs;

/// <summary>
/// Native memory aligned for O_DIRECT (which rejects buffers not aligned to the logical sector size).
/// Freed exactly once on dispose.
/// </summary>
internal sealed unsafe class AlignedBuffer : IDisposable
{
    public const int Alignment = 4096;
    private byte* _pointer;

    public AlignedBuffer(int length)
    {
        Length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), Alignment);
        NativeMemory.Clear(_pointer, (nuint)length);
    }

    public int Length { get; }

    public byte* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(nameof(AlignedBuffer));

    public Span<byte> Span => new(Pointer, Length);

    public void Dispose()
    {
        var p = _pointer;
        _pointer = null;
        if (p != null)
        {
            NativeMemory.AlignedFree(p);
        }
    }
}
