using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Registry;

/// <summary>
/// OpenAPI v3 schemas published for the built-in types, trimmed to the fields this project uses; enough for
/// <c>kubectl explain</c> and for kubectl's field-validation probe. metadata is added by the OpenAPI builder.
/// </summary>
public static class BuiltinSchemas
{
    private static JsonObject Obj(string description, string properties) =>
        (JsonObject)JsonNode.Parse("{\"type\":\"object\",\"description\":" + Quote(description) + ",\"properties\":{" + properties + "}}")!;

    private static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s);

    private static string S(string name, string description) => $"{Quote(name)}:{{\"type\":\"string\",\"description\":{Quote(description)}}}";

    private static string I(string name, string description) => $"{Quote(name)}:{{\"type\":\"integer\",\"format\":\"int32\",\"description\":{Quote(description)}}}";

    private static string Map(string name, string description, string format = "") =>
        $"{Quote(name)}:{{\"type\":\"object\",\"description\":{Quote(description)},\"additionalProperties\":{{\"type\":\"string\"{(format.Length > 0 ? $",\"format\":{Quote(format)}" : "")}}}}}";

    public static JsonObject Namespace() => Obj("Namespace provides a scope for Names.",
        """
        "spec":{"type":"object","description":"Spec defines the behavior of the Namespace.","properties":{"finalizers":{"type":"array","items":{"type":"string"},"description":"Finalizers is an opaque list of values that must be empty to permanently remove object from storage."}}},
        "status":{"type":"object","description":"Status describes the current status of a Namespace.","properties":{"phase":{"type":"string","description":"Phase is the current lifecycle phase of the namespace: Active or Terminating."}}}
        """);

    public static JsonObject ConfigMap() => Obj("ConfigMap holds configuration data for pods to consume.",
        string.Join(",",
            Map("data", "Data contains the configuration data."),
            Map("binaryData", "BinaryData contains the binary data, base64-encoded.", "byte"),
            "\"immutable\":{\"type\":\"boolean\",\"description\":\"Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated.\"}"));

    public static JsonObject Secret() => Obj("Secret holds secret data of a certain type.",
        string.Join(",",
            Map("data", "Data contains the secret data, base64-encoded.", "byte"),
            Map("stringData", "stringData allows specifying non-binary secret data in string form. It is write-only: merged into data on write."),
            S("type", "Used to facilitate programmatic handling of secret data."),
            "\"immutable\":{\"type\":\"boolean\",\"description\":\"Immutable, if set to true, ensures that data stored in the Secret cannot be updated.\"}"));

    private const string ObjectReference =
        """{"type":"object","description":"ObjectReference contains enough information to let you inspect or modify the referred object.","properties":{"apiVersion":{"type":"string"},"kind":{"type":"string"},"name":{"type":"string"},"namespace":{"type":"string"},"uid":{"type":"string"},"resourceVersion":{"type":"string"},"fieldPath":{"type":"string"}}}""";

    public static JsonObject Event() => Obj("Event is a report of an event somewhere in the cluster.",
        string.Join(",",
            "\"involvedObject\":" + ObjectReference,
            "\"related\":" + ObjectReference,
            S("reason", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            S("message", "A human-readable description of the status of this operation."),
            S("type", "Type of this event (Normal, Warning)."),
            S("action", "What action was taken/failed regarding to the Regarding object."),
            S("firstTimestamp", "The time at which the event was first recorded."),
            S("lastTimestamp", "The time at which the most recent occurrence of this event was recorded."),
            S("eventTime", "Time when this Event was first observed."),
            I("count", "The number of times this event has occurred."),
            S("reportingComponent", "Name of the controller that emitted this Event."),
            S("reportingInstance", "ID of the controller instance."),
            "\"source\":{\"type\":\"object\",\"properties\":{\"component\":{\"type\":\"string\"},\"host\":{\"type\":\"string\"}}}",
            "\"series\":{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},\"lastObservedTime\":{\"type\":\"string\"}}}"));

    public static JsonObject EventV1() => Obj("Event is a report of an event somewhere in the cluster.",
        string.Join(",",
            "\"regarding\":" + ObjectReference,
            "\"related\":" + ObjectReference,
            S("reason", "Why the action was taken."),
            S("note", "A human-readable description of the status of this operation."),
            S("type", "Type of this event (Normal, Warning)."),
            S("action", "What action was taken/failed regarding to the regarding object."),
            S("eventTime", "Time when this Event was first observed."),
            S("reportingController", "Name of the controller that emitted this Event."),
            S("reportingInstance", "ID of the controller instance."),
            S("deprecatedFirstTimestamp", "Deprecated field assuring backward compatibility with core.v1 Event type."),
            S("deprecatedLastTimestamp", "Deprecated field assuring backward compatibility with core.v1 Event type."),
            I("deprecatedCount", "Deprecated field assuring backward compatibility with core.v1 Event type."),
            "\"deprecatedSource\":{\"type\":\"object\",\"properties\":{\"component\":{\"type\":\"string\"},\"host\":{\"type\":\"string\"}}}",
            "\"series\":{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},\"lastObservedTime\":{\"type\":\"string\"}}}"));

    public static JsonObject Lease() => Obj("Lease defines a lease concept.",
        "\"spec\":" + Obj("LeaseSpec is a specification of a Lease.",
            string.Join(",",
                S("holderIdentity", "The identity of the holder of a current lease."),
                I("leaseDurationSeconds", "Duration that candidates for a lease need to wait to force acquire it."),
                S("acquireTime", "When the current lease was acquired."),
                S("renewTime", "When the current holder of a lease has last updated the lease."),
                I("leaseTransitions", "The number of transitions of a lease between holders."),
                S("strategy", "Strategy indicates the strategy for picking the leader for coordinated leader election."),
                S("preferredHolder", "PreferredHolder signals to a lease holder that the lease has a more optimal holder."))).ToJsonString());

    public static JsonObject CustomResourceDefinition() => Obj("CustomResourceDefinition represents a resource that should be exposed on the API server.",
        """
        "spec":{"type":"object","description":"spec describes how the user wants the resources to appear","x-kubernetes-preserve-unknown-fields":true},
        "status":{"type":"object","description":"status indicates the actual state of the CustomResourceDefinition","x-kubernetes-preserve-unknown-fields":true}
        """);

    public static JsonObject ObjectMeta() => Obj("ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        string.Join(",",
            S("name", "Name must be unique within a namespace. Cannot be updated."),
            S("generateName", "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            S("namespace", "Namespace defines the space within which each name must be unique."),
            S("uid", "UID is the unique in time and space value for this object. Populated by the system. Read-only."),
            S("resourceVersion", "An opaque value that represents the internal version of this object, used for optimistic concurrency. Read-only."),
            "\"generation\":{\"type\":\"integer\",\"format\":\"int64\",\"description\":\"A sequence number representing a specific generation of the desired state. Populated by the system. Read-only.\"}",
            "\"creationTimestamp\":{\"type\":\"string\",\"format\":\"date-time\",\"description\":\"CreationTimestamp is a timestamp representing the server time when this object was created.\"}",
            "\"deletionTimestamp\":{\"type\":\"string\",\"format\":\"date-time\",\"description\":\"DeletionTimestamp is the time after which this resource will be deleted; set when deletion is requested and finalizers are pending.\"}",
            "\"deletionGracePeriodSeconds\":{\"type\":\"integer\",\"format\":\"int64\",\"description\":\"Number of seconds allowed for this object to gracefully terminate.\"}",
            Map("labels", "Map of string keys and values that can be used to organize and categorize (scope and select) objects."),
            Map("annotations", "Annotations is an unstructured key value map stored with a resource."),
            "\"finalizers\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"x-kubernetes-list-type\":\"set\",\"description\":\"Must be empty before the object is deleted from the registry.\"}",
            "\"ownerReferences\":{\"type\":\"array\",\"description\":\"List of objects depended by this object. If ALL objects in the list have been deleted, this object will be garbage collected.\",\"x-kubernetes-list-type\":\"map\",\"x-kubernetes-list-map-keys\":[\"uid\"],\"items\":{\"type\":\"object\",\"required\":[\"apiVersion\",\"kind\",\"name\",\"uid\"],\"properties\":{\"apiVersion\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"uid\":{\"type\":\"string\"},\"controller\":{\"type\":\"boolean\"},\"blockOwnerDeletion\":{\"type\":\"boolean\"}}}}",
            "\"managedFields\":{\"type\":\"array\",\"description\":\"ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.\",\"items\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}}"));
}
