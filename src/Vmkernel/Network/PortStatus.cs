namespace Vmk.Vmkernel.Network;

/// <summary>A VM port as the kernel sees it now.</summary>
/// <param name="Carrier">True when the VM side of the tap is open (QEMU runs and attached it).</param>
/// <param name="BridgeState">The bridge's state for the port: forwarding, disabled (no carrier or down), ...</param>
public sealed record PortStatus(string Vm, string Nic, string Tap, string Mac, bool Exists, bool Carrier, string BridgeState, IReadOnlyList<string> Addresses);
