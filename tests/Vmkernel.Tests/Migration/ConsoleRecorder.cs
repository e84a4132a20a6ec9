using System.Globalization;
using System.Text;
using Vmk.Vmkernel.Vm;

namespace Vmk.Vmkernel.Tests.Migration;

/// <summary>
/// Everything a VM printed on its console during one run (history included), kept after the VM left the host:
/// a migrated-away VM's console and log go with its definition.
/// </summary>
internal sealed class ConsoleRecorder
{
    private readonly StringBuilder _text = new();
    private readonly Lock _gate = new();
    private readonly Task _pump;

    public ConsoleRecorder(VirtualMachine vm)
    {
        var sub = (vm.Console ?? throw new InvalidOperationException($"VM {vm.Name} has no console")).Subscribe(replayHistory: true);
        _pump = Task.Run(async () =>
        {
            using (sub)
            {
                await foreach (var chunk in sub.Output.ReadAllAsync())
                {
                    lock (_gate)
                    {
                        _text.Append(Encoding.UTF8.GetString(chunk.Span));
                    }
                }
            }
        });
    }

    /// <summary>Completes when the console closed (the VM's QEMU is gone).</summary>
    public Task Closed => _pump;

    public IReadOnlyList<int> Numbers(string marker)
    {
        string text;
        lock (_gate)
        {
            text = _text.ToString();
        }
        return Parse(text, marker);
    }

    /// <summary>The numbers of every complete "MARKER n" line, in order.</summary>
    public static IReadOnlyList<int> Parse(string text, string marker) =>
        text.Split('\n').Select(l => l.TrimEnd('\r'))
            .Where(l => l.StartsWith(marker + " ", StringComparison.Ordinal))
            .Select(l => int.TryParse(l[(marker.Length + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1)
            .Where(n => n >= 0)
            .ToList();
}
