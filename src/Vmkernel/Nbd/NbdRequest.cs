namespace Vmk.Vmkernel.Nbd;

/// <summary>One transmission-phase request header as the client sent it (payload, if any, follows on the wire).</summary>
internal readonly record struct NbdRequest(ushort Flags, ushort Type, ulong Handle, ulong Offset, uint Length)
{
    public bool HasPayload => Type == NbdProtocol.CmdWrite;

    public bool Fua => (Flags & NbdProtocol.CmdFlagFua) != 0;
}
