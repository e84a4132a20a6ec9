namespace Vmk.NodeDaemon.Agent;

/// <summary>CPU in millicores (1000 = one host core's worth of time) and memory in bytes.</summary>
public readonly record struct ResourceAmount(long CpuMillicores, long MemoryBytes);
