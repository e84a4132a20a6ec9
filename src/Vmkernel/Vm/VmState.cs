namespace Vmk.Vmkernel.Vm;

/// <summary>Power state of a VM as the VMkernel tracks it.</summary>
public enum VmState
{
    Stopped,
    Starting,
    Running,
    Paused,
    Stopping,
    Failed,
}
