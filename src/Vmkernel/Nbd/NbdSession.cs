namespace Vmk.Vmkernel.Nbd;

/// <summary>What the handshake settled for one connection's transmission phase.</summary>
/// <param name="Export">The export the client chose.</param>
/// <param name="StructuredReplies">The client negotiated NBD_OPT_STRUCTURED_REPLY.</param>
/// <param name="BaseAllocation">The client selected base:allocation for this export, so BLOCK_STATUS is allowed.</param>
/// <param name="TransmissionFlags">The flags the client was sent.</param>
internal sealed record NbdSession(NbdExport Export, bool StructuredReplies, bool BaseAllocation, ushort TransmissionFlags);
