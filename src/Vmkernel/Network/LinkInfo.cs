using System.Text.Json;

namespace Vmk.Vmkernel.Network;

/// <summary>One network device as `ip -j -d link show` reports it: the fields the vSwitch reconciles against.</summary>
public sealed record LinkInfo
{
    public required string Name { get; init; }

    public string? Kind { get; init; }

    public string? Master { get; init; }

    /// <summary>The parent of a VLAN device.</summary>
    public string? Parent { get; init; }

    public int Mtu { get; init; }

    public bool AdminUp { get; init; }

    public bool LowerUp { get; init; }

    public string OperState { get; init; } = "UNKNOWN";

    public string? Mac { get; init; }

    public long? VxlanId { get; init; }

    public string? VxlanLocal { get; init; }

    public int? VxlanPort { get; init; }

    public int? VlanId { get; init; }

    public long? AgeingTime { get; init; }

    /// <summary>STP state of a bridge port (forwarding, disabled, ...), as the bridge sees it.</summary>
    public string? PortState { get; init; }

    public static IReadOnlyDictionary<string, LinkInfo> ParseAll(string json)
    {
        var result = new Dictionary<string, LinkInfo>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(json))
        {
            return result;
        }
        using var doc = JsonDocument.Parse(json);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var link = Parse(e);
            result[link.Name] = link;
        }
        return result;
    }

    private static LinkInfo Parse(JsonElement e)
    {
        var flags = e.TryGetProperty("flags", out var f) ? f.EnumerateArray().Select(x => x.GetString()).ToHashSet() : [];
        string? kind = null;
        long? vxId = null;
        string? vxLocal = null;
        int? vxPort = null;
        int? vlanId = null;
        long? ageing = null;
        string? portState = null;
        if (e.TryGetProperty("linkinfo", out var li))
        {
            kind = Str(li, "info_kind");
            if (li.TryGetProperty("info_data", out var data))
            {
                switch (kind)
                {
                    case "vxlan":
                        vxId = Long(data, "id");
                        vxLocal = Str(data, "local");
                        vxPort = (int?)Long(data, "port");
                        break;
                    case "vlan":
                        vlanId = (int?)Long(data, "id");
                        break;
                    case "bridge":
                        ageing = Long(data, "ageing_time");
                        break;
                }
            }
            if (li.TryGetProperty("info_slave_data", out var slave))
            {
                portState = Str(slave, "state");
            }
        }
        return new LinkInfo
        {
            Name = Str(e, "ifname") ?? "",
            Kind = kind,
            Master = Str(e, "master"),
            Parent = Str(e, "link"),
            Mtu = (int)(Long(e, "mtu") ?? 0),
            AdminUp = flags.Contains("UP"),
            LowerUp = flags.Contains("LOWER_UP"),
            OperState = Str(e, "operstate") ?? "UNKNOWN",
            Mac = Str(e, "address"),
            VxlanId = vxId,
            VxlanLocal = vxLocal,
            VxlanPort = vxPort,
            VlanId = vlanId,
            AgeingTime = ageing,
            PortState = portState,
        };
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long? Long(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;
}
