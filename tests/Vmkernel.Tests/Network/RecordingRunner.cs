using Vmk.Vmkernel.Network;

namespace Vmk.Vmkernel.Tests.Network;

/// <summary>Passes requests to the real runner and remembers them, so a test can see what was changed.</summary>
internal sealed class RecordingRunner(ICommandRunner inner) : ICommandRunner
{
    private readonly List<CommandRequest> _requests = [];

    public IReadOnlyList<CommandRequest> Requests
    {
        get
        {
            lock (_requests)
            {
                return _requests.ToList();
            }
        }
    }

    public IEnumerable<string> Writes => Requests.Where(r => !r.IsRead).Select(r => r.Program + " " + string.Join(' ', r.Args));

    public void Clear()
    {
        lock (_requests)
        {
            _requests.Clear();
        }
    }

    public Task<CommandResult> RunAsync(CommandRequest request, CancellationToken ct = default)
    {
        lock (_requests)
        {
            _requests.Add(request);
        }
        return inner.RunAsync(request, ct);
    }
}
