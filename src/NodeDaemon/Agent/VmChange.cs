using Vmk.Vmkernel.Vm;

namespace Vmk.NodeDaemon.Agent;

/// <summary>One change a watch stream reports: what happened, to which VM, and its status at that moment.</summary>
public sealed record VmChange(VmChangeKind Kind, VirtualMachine Vm, VmStatus Status);
