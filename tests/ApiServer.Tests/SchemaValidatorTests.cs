using System.Text.Json.Nodes;
using Vmk.ApiServer.Schema;
using Vmk.ApiServer.Yaml;

namespace Vmk.ApiServer.Tests;

/// <summary>Pruning, defaulting and kube-apiserver's error texts, on the project's own VirtualMachine schema.</summary>
public sealed class SchemaValidatorTests
{
    private static readonly SchemaNode VmSchema = LoadVmSchema();

    private static SchemaNode LoadVmSchema()
    {
        var crd = (JsonObject)YamlJson.ParseSingle(File.ReadAllText(Path.Combine(CrdLocator.Find()!, "virtualmachine.yaml")))!;
        return SchemaNode.Parse((JsonObject)crd["spec"]!["versions"]![0]!["schema"]!["openAPIV3Schema"]!);
    }

    private static JsonObject Vm(string spec) => (JsonObject)JsonNode.Parse($"{{\"apiVersion\":\"vmkernel.io/v1alpha1\",\"kind\":\"VirtualMachine\",\"metadata\":{{\"name\":\"x\"}},\"spec\":{spec}}}")!;

    [Fact]
    public void Defaults_fill_absent_fields_including_inside_defaulted_objects_and_list_items()
    {
        var vm = Vm("{\"memory\":{\"size\":\"1Gi\"},\"nics\":[{\"name\":\"eth0\",\"portGroup\":\"pg\"}]}");
        var result = SchemaValidator.Run(vm, VmSchema);
        Assert.Empty(result.Errors);
        Assert.Equal("Always", vm["spec"]!["runPolicy"]!.GetValue<string>());
        Assert.Equal(1, vm["spec"]!["cpu"]!["sockets"]!.GetValue<int>());
        Assert.Equal("Normal", vm["spec"]!["memory"]!["shares"]!.GetValue<string>());
        Assert.Equal("virtio", vm["spec"]!["nics"]![0]!["model"]!.GetValue<string>());
        Assert.Equal("Medium", vm["spec"]!["ha"]!["restartPriority"]!.GetValue<string>());
    }

    [Fact]
    public void Unknown_fields_are_pruned_and_reported_with_their_paths()
    {
        var vm = Vm("{\"memory\":{\"size\":\"1Gi\",\"sizee\":2},\"colour\":\"red\"}");
        var result = SchemaValidator.Run(vm, VmSchema);
        Assert.Equal(["spec.colour", "spec.memory.sizee"], result.UnknownFields.Order());
        Assert.Null(vm["spec"]!["colour"]);
        Assert.NotNull(vm["metadata"]);
    }

    [Fact]
    public void Every_violation_is_reported_in_kube_apiserver_wording()
    {
        var vm = Vm("{\"memory\":{\"size\":true},\"cpu\":{\"threads\":3},\"disks\":[{\"name\":\"a\",\"datastore\":\"d\"},{\"name\":\"a\",\"datastore\":\"e\"}],\"nics\":[{\"name\":\"Bad Name\",\"portGroup\":\"p\",\"mac\":\"zz\"}]}");
        var errors = SchemaValidator.Run(vm, VmSchema).Errors.Select(e => e.ToString()).ToList();
        Assert.Contains("spec.memory.size: Invalid value: \"boolean\": spec.memory.size in body must be of type integer,string: \"boolean\"", errors);
        Assert.Contains("spec.cpu.threads: Invalid value: 3: spec.cpu.threads in body should be less than or equal to 2", errors);
        Assert.Contains("spec.disks[1]: Duplicate value: {\"name\":\"a\"}", errors);
        Assert.Contains(errors, e => e.StartsWith("spec.nics[0].name: Invalid value: \"Bad Name\": spec.nics[0].name in body should match", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("spec.nics[0].mac: Invalid value: \"zz\"", StringComparison.Ordinal));
        Assert.Equal(5, errors.Count);
    }

    [Fact]
    public void Null_in_a_non_nullable_field_is_dropped_or_defaulted()
    {
        var vm = Vm("{\"memory\":{\"size\":\"1Gi\"},\"runPolicy\":null,\"boot\":null}");
        var result = SchemaValidator.Run(vm, VmSchema);
        Assert.Empty(result.Errors);
        Assert.Equal("Always", vm["spec"]!["runPolicy"]!.GetValue<string>());
        Assert.False(((JsonObject)vm["spec"]!).ContainsKey("boot"));
    }
}
