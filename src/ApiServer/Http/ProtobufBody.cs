using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Http;

/// <summary>
/// Decodes the Kubernetes protobuf bodies that kubectl's typed commands send (<c>kubectl create namespace|configmap|
/// secret</c>) into the JSON form, for Namespace, ConfigMap and Secret only. Layout: the magic "k8s\0", then a
/// runtime.Unknown message {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw object bytes}; field numbers of the objects
/// are those of k8s.io/api/core/v1/generated.proto. Anything else is answered 415.
/// </summary>
public static class ProtobufBody
{
    private static readonly byte[] Magic = "k8s\0"u8.ToArray();

    public static JsonObject Decode(byte[] body)
    {
        if (body.Length < 4 || !body.AsSpan(0, 4).SequenceEqual(Magic))
        {
            throw ApiException.BadRequest("protobuf body does not start with the k8s\\0 envelope");
        }
        try
        {
            string? apiVersion = null;
            string? kind = null;
            ReadOnlyMemory<byte> raw = default;
            foreach (var (field, value) in Fields(body.AsMemory(4)))
            {
                switch (field)
                {
                    case 1:
                        foreach (var (f, v) in Fields(value.Bytes))
                        {
                            if (f == 1) { apiVersion = v.String; }
                            if (f == 2) { kind = v.String; }
                        }
                        break;
                    case 2:
                        raw = value.Bytes;
                        break;
                }
            }
            var obj = kind switch
            {
                "Namespace" => Namespace(raw),
                "ConfigMap" => ConfigMap(raw),
                "Secret" => Secret(raw),
                _ => throw ApiException.UnsupportedMediaType($"protobuf bodies are understood for Namespace, ConfigMap and Secret only, not {kind}; send JSON or YAML (kubectl apply -f)"),
            };
            obj["apiVersion"] = apiVersion ?? "v1";
            obj["kind"] = kind;
            return new JsonObject(obj.OrderBy(p => p.Key switch { "apiVersion" => 0, "kind" => 1, "metadata" => 2, _ => 3 })
                .Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone())));
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or FormatException or OverflowException)
        {
            throw ApiException.BadRequest("malformed protobuf body: " + e.Message);
        }
    }

    private static JsonObject Namespace(ReadOnlyMemory<byte> raw)
    {
        var o = new JsonObject();
        foreach (var (field, value) in Fields(raw))
        {
            switch (field)
            {
                case 1: o["metadata"] = ObjectMeta(value.Bytes); break;
                case 2:
                    var finalizers = new JsonArray();
                    foreach (var (f, v) in Fields(value.Bytes))
                    {
                        if (f == 1) { finalizers.Add(v.String); }
                    }
                    o["spec"] = new JsonObject { ["finalizers"] = finalizers };
                    break;
            }
        }
        return o;
    }

    private static JsonObject ConfigMap(ReadOnlyMemory<byte> raw)
    {
        var o = new JsonObject();
        var data = new JsonObject();
        var binary = new JsonObject();
        foreach (var (field, value) in Fields(raw))
        {
            switch (field)
            {
                case 1: o["metadata"] = ObjectMeta(value.Bytes); break;
                case 2: MapEntry(value.Bytes, data, asBase64: false); break;
                case 3: MapEntry(value.Bytes, binary, asBase64: true); break;
                case 4: o["immutable"] = value.Varint != 0; break;
            }
        }
        if (data.Count > 0) { o["data"] = data; }
        if (binary.Count > 0) { o["binaryData"] = binary; }
        return o;
    }

    private static JsonObject Secret(ReadOnlyMemory<byte> raw)
    {
        var o = new JsonObject();
        var data = new JsonObject();
        var stringData = new JsonObject();
        foreach (var (field, value) in Fields(raw))
        {
            switch (field)
            {
                case 1: o["metadata"] = ObjectMeta(value.Bytes); break;
                case 2: MapEntry(value.Bytes, data, asBase64: true); break;
                case 3: o["type"] = value.String; break;
                case 4: MapEntry(value.Bytes, stringData, asBase64: false); break;
                case 5: o["immutable"] = value.Varint != 0; break;
            }
        }
        if (data.Count > 0) { o["data"] = data; }
        if (stringData.Count > 0) { o["stringData"] = stringData; }
        return o;
    }

    private static JsonObject ObjectMeta(ReadOnlyMemory<byte> raw)
    {
        var meta = new JsonObject();
        var labels = new JsonObject();
        var annotations = new JsonObject();
        var finalizers = new JsonArray();
        var owners = new JsonArray();
        foreach (var (field, value) in Fields(raw))
        {
            switch (field)
            {
                case 1: meta["name"] = value.String; break;
                case 2: meta["generateName"] = value.String; break;
                case 3: meta["namespace"] = value.String; break;
                case 6: meta["resourceVersion"] = value.String; break;
                case 11: MapEntry(value.Bytes, labels, asBase64: false); break;
                case 12: MapEntry(value.Bytes, annotations, asBase64: false); break;
                case 13:
                    var owner = new JsonObject();
                    foreach (var (f, v) in Fields(value.Bytes))
                    {
                        switch (f)
                        {
                            case 1: owner["kind"] = v.String; break;
                            case 3: owner["name"] = v.String; break;
                            case 4: owner["uid"] = v.String; break;
                            case 5: owner["apiVersion"] = v.String; break;
                            case 6: owner["controller"] = v.Varint != 0; break;
                            case 7: owner["blockOwnerDeletion"] = v.Varint != 0; break;
                        }
                    }
                    owners.Add(owner);
                    break;
                case 14: finalizers.Add(value.String); break;
            }
        }
        if (labels.Count > 0) { meta["labels"] = labels; }
        if (annotations.Count > 0) { meta["annotations"] = annotations; }
        if (finalizers.Count > 0) { meta["finalizers"] = finalizers; }
        if (owners.Count > 0) { meta["ownerReferences"] = owners; }
        return meta;
    }

    private static void MapEntry(ReadOnlyMemory<byte> entry, JsonObject into, bool asBase64)
    {
        string key = "";
        string value = "";
        foreach (var (f, v) in Fields(entry))
        {
            if (f == 1) { key = v.String; }
            if (f == 2) { value = asBase64 ? Convert.ToBase64String(v.Bytes.Span) : v.String; }
        }
        into[key] = value;
    }

    private readonly record struct Value(ulong Varint, ReadOnlyMemory<byte> Bytes)
    {
        public string String => Encoding.UTF8.GetString(Bytes.Span);
    }

    /// <summary>Top-level fields of one message: (field number, value); unknown wire types end with FormatException.</summary>
    private static List<(int Field, Value Value)> Fields(ReadOnlyMemory<byte> message)
    {
        var result = new List<(int, Value)>();
        var span = message.Span;
        var pos = 0;
        while (pos < span.Length)
        {
            var tag = ReadVarint(span, ref pos);
            var field = (int)(tag >> 3);
            switch (tag & 7)
            {
                case 0:
                    result.Add((field, new Value(ReadVarint(span, ref pos), default)));
                    break;
                case 1:
                    result.Add((field, new Value(BinaryPrimitives.ReadUInt64LittleEndian(span.Slice(pos, 8)), default)));
                    pos += 8;
                    break;
                case 2:
                    var length = checked((int)ReadVarint(span, ref pos));
                    if (length < 0 || pos + length > span.Length)
                    {
                        throw new FormatException("length-delimited field runs past the end");
                    }
                    result.Add((field, new Value(0, message.Slice(pos, length))));
                    pos += length;
                    break;
                case 5:
                    result.Add((field, new Value(BinaryPrimitives.ReadUInt32LittleEndian(span.Slice(pos, 4)), default)));
                    pos += 4;
                    break;
                default:
                    throw new FormatException($"unsupported protobuf wire type {tag & 7}");
            }
        }
        return result;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> span, ref int pos)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = span[pos++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
        throw new FormatException("varint too long");
    }
}
