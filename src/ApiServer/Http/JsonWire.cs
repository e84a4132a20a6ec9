using System.Text.Encodings.Web;
using System.Text.Json;

namespace Vmk.ApiServer.Http;

/// <summary>JSON as kube-apiserver writes it: quotes and '&lt;' stay readable ("\"" rather than "\u0022").</summary>
public static class JsonWire
{
    public static readonly JsonSerializerOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
