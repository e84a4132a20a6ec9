using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Vmk.NodeDaemon.Configuration;

namespace Vmk.NodeDaemon.Agent;

/// <summary>
/// Which Kubernetes object each VM belongs to (namespace, name, uid), for metric labels and listings. The
/// VMkernel knows VMs by host-unique name only; this is the daemon's own small record beside its state, kept in
/// <c>&lt;state&gt;/vmkerneld/owners/&lt;vm&gt;.json</c> so it survives a restart with the VMs.
/// </summary>
public sealed class VmOwnerStore
{
    private readonly string _directory;
    private readonly ConcurrentDictionary<string, VmOwnerRecord> _owners = new(StringComparer.Ordinal);

    public VmOwnerStore(IOptions<DaemonOptions> options)
    {
        _directory = Path.Combine(options.Value.StateDirectory, "vmkerneld", "owners");
        if (Directory.Exists(_directory))
        {
            foreach (var file in Directory.EnumerateFiles(_directory, "*.json"))
            {
                try
                {
                    var owner = JsonSerializer.Deserialize<VmOwnerRecord>(File.ReadAllText(file));
                    if (owner is not null)
                    {
                        _owners[Path.GetFileNameWithoutExtension(file)] = owner;
                    }
                }
                catch (Exception e) when (e is IOException or JsonException)
                {
                    // An unreadable record only costs labels; the VM itself is unaffected.
                }
            }
        }
    }

    public VmOwnerRecord Get(string vm) => _owners.GetValueOrDefault(vm) ?? VmOwnerRecord.None;

    public void Set(string vm, VmOwnerRecord owner)
    {
        if (Get(vm) == owner)
        {
            return;
        }
        Directory.CreateDirectory(_directory);
        var path = Path.Combine(_directory, vm + ".json");
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(owner));
        File.Move(path + ".tmp", path, overwrite: true);
        _owners[vm] = owner;
    }

    public void Remove(string vm)
    {
        _owners.TryRemove(vm, out _);
        var path = Path.Combine(_directory, vm + ".json");
        if (File.Exists(path)) // a host that never recorded an owner has no directory, and File.Delete throws for that
        {
            File.Delete(path);
        }
    }
}
