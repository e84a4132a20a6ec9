using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Http;

/// <summary>
/// A request failure that is answered with a Kubernetes <c>Status</c> object, the way kube-apiserver answers:
/// clients (kubectl, KubernetesClient) read <c>reason</c>, <c>code</c> and <c>details.causes</c>.
/// </summary>
public sealed class ApiException : Exception
{
    public ApiException(int code, string reason, string message, JsonObject? details = null)
        : base(message)
    {
        Code = code;
        Reason = reason;
        Details = details;
    }

    public int Code { get; }

    public string Reason { get; }

    public JsonObject? Details { get; }

    public static ApiException BadRequest(string message) => new(400, "BadRequest", message);

    public static ApiException NotFound(string resource, string name, string group = "")
        => new(404, "NotFound", $"{QualifiedResource(resource, group)} \"{name}\" not found",
            new JsonObject { ["name"] = name, ["group"] = group, ["kind"] = resource });

    public static ApiException NotFoundPath(string path)
        => new(404, "NotFound", $"the server could not find the requested resource ({path})");

    public static ApiException Conflict(string resource, string group, string name, string why)
        => new(409, "Conflict", $"Operation cannot be fulfilled on {QualifiedResource(resource, group)} \"{name}\": {why}",
            new JsonObject { ["name"] = name, ["group"] = group, ["kind"] = resource });

    public static ApiException AlreadyExists(string resource, string group, string name)
        => new(409, "AlreadyExists", $"{QualifiedResource(resource, group)} \"{name}\" already exists",
            new JsonObject { ["name"] = name, ["group"] = group, ["kind"] = resource });

    public static ApiException MethodNotAllowed(string message) => new(405, "MethodNotAllowed", message);

    public static ApiException UnsupportedMediaType(string message) => new(415, "UnsupportedMediaType", message);

    public static ApiException Forbidden(string message) => new(403, "Forbidden", message);

    public static ApiException Gone(string message) => new(410, "Expired", message);

    /// <summary>422 with one cause per offending field, message formatted as kube-apiserver's field.ErrorList.</summary>
    public static ApiException Invalid(string kind, string group, string name, IReadOnlyList<FieldError> errors)
    {
        var qualified = string.IsNullOrEmpty(group) ? kind : $"{kind}.{group}";
        var joined = errors.Count == 1 ? errors[0].ToString() : "[" + string.Join(", ", errors.Select(e => e.ToString())) + "]";
        var causes = new JsonArray();
        foreach (var e in errors)
        {
            causes.Add(new JsonObject { ["reason"] = e.CauseReason, ["message"] = e.Detail(), ["field"] = e.Path });
        }
        return new ApiException(422, "Invalid", $"{qualified} \"{name}\" is invalid: {joined}",
            new JsonObject { ["name"] = name, ["group"] = group, ["kind"] = kind, ["causes"] = causes });
    }

    private static string QualifiedResource(string resource, string group)
        => string.IsNullOrEmpty(group) ? resource : $"{resource}.{group}";

    public JsonObject ToStatus()
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = Message,
            ["reason"] = Reason,
        };
        if (Details is not null)
        {
            status["details"] = Details.DeepClone();
        }
        status["code"] = Code;
        return status;
    }
}
