namespace Vmk.Vmkernel.Resources;

/// <summary>One control-file write: <paramref name="Value"/> into <paramref name="File"/> of the VM's cgroup in <paramref name="Controller"/>'s hierarchy.</summary>
internal sealed record CgroupSetting(string Controller, string File, string Value);
