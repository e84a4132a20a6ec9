using Vmk.Operator.Apis.V1Alpha1;
using Vmk.Operator.Runtime.Informer;

namespace Vmk.Operator.Controllers.Common;

/// <summary>
/// The Host objects as the Host controller's cache has them (empty while it is not running): what the other
/// reconcilers place onto and dial. A level-based reader: never an event payload.
/// </summary>
public sealed class HostDirectory(Func<ObjectCache<Host>?> cache)
{
    public IReadOnlyList<Host> All => cache()?.List() ?? [];

    public Host? Get(string name) => cache()?.Get(null, name);

    /// <summary>Hosts that report Ready with an endpoint, in name order.</summary>
    public IReadOnlyList<Host> Ready => [.. All.Where(h => h.IsReady).OrderBy(h => h.Name, StringComparer.Ordinal)];
}
