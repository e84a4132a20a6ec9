using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Vmk.ApiServer.Tests;

/// <summary>Bad requests get the status codes and Status bodies kube-apiserver gives; the server survives them all.</summary>
public sealed class HttpErrorTests : IClassFixture<ServerFixture>
{
    private readonly TestServer _server;

    public HttpErrorTests(ServerFixture fixture)
    {
        _server = fixture.Server;
    }

    private static async Task<(HttpStatusCode Code, JsonNode? Body)> SendAsync(HttpClient http, HttpMethod method, string path, string? body = null, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        JsonNode? parsed = null;
        try
        {
            parsed = JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
        }
        return (response.StatusCode, parsed);
    }

    [Fact]
    public async Task A_request_without_the_token_is_401()
    {
        using var http = _server.Http(withToken: false);
        var (code, body) = await SendAsync(http, HttpMethod.Get, "/api/v1/namespaces");
        Assert.Equal(HttpStatusCode.Unauthorized, code);
        Assert.Equal("Unauthorized", body!["reason"]!.GetValue<string>());

        using var wrong = _server.Http(withToken: false);
        wrong.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-token");
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(wrong, HttpMethod.Get, "/apis")).Code);
    }

    [Fact]
    public async Task Unknown_kinds_resources_and_objects_are_404()
    {
        using var http = _server.Http();
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(http, HttpMethod.Get, "/apis/vmkernel.io/v1alpha1/namespaces/default/teleporters")).Code);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(http, HttpMethod.Get, "/apis/nosuch.io/v1/things")).Code);
        var (code, body) = await SendAsync(http, HttpMethod.Get, "/apis/vmkernel.io/v1alpha1/namespaces/default/virtualmachines/ghost");
        Assert.Equal(HttpStatusCode.NotFound, code);
        Assert.Equal("virtualmachines.vmkernel.io \"ghost\" not found", body!["message"]!.GetValue<string>());
        var missingNs = await SendAsync(http, HttpMethod.Post, "/api/v1/namespaces/nowhere/configmaps", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"}}");
        Assert.Equal(HttpStatusCode.NotFound, missingNs.Code);
        Assert.Equal("namespaces \"nowhere\" not found", missingNs.Body!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Malformed_bodies_are_400_and_wrong_kinds_or_media_types_are_rejected()
    {
        using var http = _server.Http();
        const string path = "/apis/vmkernel.io/v1alpha1/namespaces/default/virtualmachines";
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, HttpMethod.Post, path, "{\"apiVersion\": ")).Code);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, HttpMethod.Post, path, "[1,2,3]")).Code);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, HttpMethod.Post, path, "kind: [unclosed", "application/yaml")).Code);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, HttpMethod.Post, path, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"}}")).Code);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await SendAsync(http, HttpMethod.Post, path, "k8s\0", "application/vnd.kubernetes.protobuf")).Code);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await SendAsync(http, HttpMethod.Patch, path + "/x", "{}", "application/strategic-merge-patch+json")).Code);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, HttpMethod.Get, path + "?labelSelector=a%20in%20(b")).Code);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, HttpMethod.Get, path + "?limit=-3")).Code);

        // YAML bodies are accepted, and the server still answers after all of the above.
        var yaml = "apiVersion: vmkernel.io/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: from-yaml\nspec:\n  memory:\n    size: 64Mi\n";
        var (code, body) = await SendAsync(http, HttpMethod.Post, path, yaml, "application/yaml");
        Assert.Equal(HttpStatusCode.Created, code);
        Assert.Equal("Always", body!["spec"]!["runPolicy"]!.GetValue<string>());
    }

    [Fact]
    public async Task Schema_violations_are_422_with_one_cause_per_field()
    {
        using var http = _server.Http();
        var (code, body) = await SendAsync(http, HttpMethod.Post, "/apis/vmkernel.io/v1alpha1/datastores",
            "{\"apiVersion\":\"vmkernel.io/v1alpha1\",\"kind\":\"Datastore\",\"metadata\":{\"name\":\"Bad_Name\"},\"spec\":{\"device\":{\"type\":\"tape\"},\"format\":{\"maxHosts\":\"many\"}}}");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, code);
        var fields = body!["details"]!["causes"]!.AsArray().Select(c => c!["field"]!.GetValue<string>()).Order().ToList();
        Assert.Equal(["metadata.name", "spec.device.path", "spec.device.type", "spec.format.maxHosts"], fields);
        Assert.Contains("spec.format.maxHosts: Invalid value: \"string\": spec.format.maxHosts in body must be of type integer: \"string\"", body["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Discovery_serves_aggregated_and_legacy_documents()
    {
        using var http = _server.Http();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/apis");
        request.Headers.Accept.ParseAdd("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
        using var response = await http.SendAsync(request);
        Assert.Equal("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", response.Content.Headers.ContentType!.ToString().Replace(" ", "", StringComparison.Ordinal));
        var aggregated = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var vmk = aggregated["items"]!.AsArray().Single(i => i!["metadata"]!["name"]!.GetValue<string>() == "vmkernel.io")!;
        var vm = vmk["versions"]![0]!["resources"]!.AsArray().Single(r => r!["resource"]!.GetValue<string>() == "virtualmachines")!;
        Assert.Equal("Namespaced", vm["scope"]!.GetValue<string>());
        Assert.Equal(["vm", "vms"], vm["shortNames"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Equal("status", vm["subresources"]![0]!["subresource"]!.GetValue<string>());

        var legacy = (await SendAsync(http, HttpMethod.Get, "/apis/vmkernel.io/v1alpha1")).Body!;
        Assert.Contains(legacy["resources"]!.AsArray(), r => r!["name"]!.GetValue<string>() == "datastores/status");
        var openapi = (await SendAsync(http, HttpMethod.Get, "/openapi/v3")).Body!;
        Assert.StartsWith("/openapi/v3/apis/vmkernel.io/v1alpha1?hash=", openapi["paths"]!["apis/vmkernel.io/v1alpha1"]!["serverRelativeURL"]!.GetValue<string>());
    }

    [Fact]
    public async Task Garbage_on_every_write_path_is_a_4xx_and_never_an_internal_error()
    {
        using var http = _server.Http();
        const string collection = "/apis/vmkernel.io/v1alpha1/namespaces/default/virtualmachines";
        var yaml = "apiVersion: vmkernel.io/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: target\nspec:\n  memory:\n    size: 64Mi\n";
        await SendAsync(http, HttpMethod.Post, collection, yaml, "application/yaml");
        string[] bodies =
        [
            "", "null", "42", "\"s\"", "[]", "{", "{\"metadata\":5}", "{\"metadata\":{\"name\":7}}", "{\"kind\":[],\"apiVersion\":{}}",
            "{\"apiVersion\":\"vmkernel.io/v1alpha1\",\"kind\":\"VirtualMachine\",\"metadata\":{\"name\":\"target\",\"labels\":[1],\"finalizers\":{},\"ownerReferences\":\"x\",\"resourceVersion\":7},\"spec\":[]}",
            "[{\"op\":5}]", "[{\"op\":\"add\",\"path\":5,\"value\":1}]", "[{\"op\":\"move\",\"from\":\"/nope\",\"path\":\"/x\"}]",
            "{\"$patch\":7,\"spec\":{\"$patch\":\"delete\"}}", "k8s\u0000\u0001\u0002", ": : :", "a: [1,", "\u00ff\u00fe",
        ];
        var targets = new (HttpMethod Method, string Path, string ContentType)[]
        {
            (HttpMethod.Post, collection, "application/json"),
            (HttpMethod.Post, collection, "application/yaml"),
            (HttpMethod.Put, collection + "/target", "application/json"),
            (HttpMethod.Put, collection + "/target/status", "application/json"),
            (HttpMethod.Patch, collection + "/target", "application/merge-patch+json"),
            (HttpMethod.Patch, collection + "/target", "application/json-patch+json"),
            (HttpMethod.Patch, collection + "/target", "application/apply-patch+yaml"),
            (HttpMethod.Patch, "/api/v1/namespaces/default", "application/strategic-merge-patch+json"),
            (HttpMethod.Post, "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf"),
            (HttpMethod.Delete, collection + "/nothing-here", "application/json"),
        };
        foreach (var (method, path, contentType) in targets)
        {
            foreach (var body in bodies)
            {
                var (code, _) = await SendAsync(http, method, path, body, contentType);
                Assert.True((int)code < 500, $"{method} {path} ({contentType}) with {body} answered {(int)code}");
            }
        }
        var (after, vm) = await SendAsync(http, HttpMethod.Get, collection + "/target");
        Assert.Equal(HttpStatusCode.OK, after);
        Assert.Equal("64Mi", vm!["spec"]!["memory"]!["size"]!.GetValue<string>());
    }
}
