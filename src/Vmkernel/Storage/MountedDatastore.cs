using Vmk.Vmkernel.Vmfs;

namespace Vmk.Vmkernel.Storage;

/// <summary>A VMFS datastore this host has joined (holds a heartbeat slot on it).</summary>
public sealed record MountedDatastore(string Name, string DevicePath, VmfsDatastore Datastore);
