namespace Vmk.Vmkernel.Nbd;

/// <summary>Outcome of parsing one frame from the bytes received so far.</summary>
internal enum NbdParseStatus
{
    /// <summary>A whole frame was parsed; the consumed count says how many bytes it took.</summary>
    Done,

    /// <summary>Not enough bytes yet: keep them and receive more.</summary>
    NeedMoreData,

    /// <summary>The bytes are not an NBD frame (bad magic): the protocol allows only a hard disconnect.</summary>
    BadMagic,
}
