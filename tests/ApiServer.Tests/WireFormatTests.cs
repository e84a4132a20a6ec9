using System.Text.Json.Nodes;
using Vmk.ApiServer.Http;
using Vmk.ApiServer.Patching;
using Vmk.ApiServer.Selectors;
using Vmk.ApiServer.Yaml;

namespace Vmk.ApiServer.Tests;

/// <summary>Selectors, patches and YAML typing as Kubernetes clients expect them.</summary>
public sealed class WireFormatTests
{
    private static JsonObject Labelled(string labels) => new() { ["metadata"] = new JsonObject { ["labels"] = JsonNode.Parse(labels) } };

    [Theory]
    [InlineData("tier=gold", true)]
    [InlineData("tier==gold,env", true)]
    [InlineData("tier!=gold", false)]
    [InlineData("tier in (silver, gold),!legacy", true)]
    [InlineData("tier notin (gold)", false)]
    [InlineData("missing", false)]
    [InlineData("!missing", true)]
    public void Label_selectors_follow_kubernetes_syntax(string selector, bool matches)
        => Assert.Equal(matches, LabelSelector.Parse(selector)!.Matches(Labelled("{\"tier\":\"gold\",\"env\":\"prod\"}")));

    [Theory]
    [InlineData("tier in (gold")]
    [InlineData("tier=gold,,")]
    [InlineData("ti er=gold")]
    public void Malformed_label_selectors_are_a_400(string selector)
        => Assert.Equal(400, Assert.Throws<ApiException>(() => LabelSelector.Parse(selector)).Code);

    [Fact]
    public void Json_patch_applies_all_operations_or_none()
    {
        var doc = JsonNode.Parse("{\"a\":{\"b\":[1,2]},\"c\":\"x\"}");
        var patched = JsonPatch.Apply(doc, JsonNode.Parse("""
            [{"op":"add","path":"/a/b/-","value":3},{"op":"move","from":"/c","path":"/d"},
             {"op":"copy","from":"/d","path":"/e"},{"op":"remove","path":"/a/b/0"},{"op":"test","path":"/e","value":"x"},
             {"op":"add","path":"/f~1g","value":true}]
            """));
        Assert.Equal("{\"a\":{\"b\":[2,3]},\"d\":\"x\",\"e\":\"x\",\"f/g\":true}", patched!.ToJsonString());
        Assert.Equal("{\"a\":{\"b\":[1,2]},\"c\":\"x\"}", doc!.ToJsonString());
        var failed = Assert.Throws<ApiException>(() => JsonPatch.Apply(doc, JsonNode.Parse("[{\"op\":\"remove\",\"path\":\"/nope\"}]")));
        Assert.Equal(422, failed.Code);
        Assert.Equal(400, Assert.Throws<ApiException>(() => JsonPatch.Apply(doc, JsonNode.Parse("{\"op\":\"add\"}"))).Code);
    }

    [Fact]
    public void Merge_patch_merges_objects_deletes_nulls_and_replaces_lists()
    {
        var result = MergePatch.Apply(JsonNode.Parse("{\"a\":{\"x\":1,\"y\":2},\"l\":[1,2],\"k\":1}"), JsonNode.Parse("{\"a\":{\"y\":null,\"z\":3},\"l\":[9],\"k\":null}"));
        Assert.Equal("{\"a\":{\"x\":1,\"z\":3},\"l\":[9]}", result!.ToJsonString());
    }

    [Fact]
    public void Yaml_scalars_are_typed_like_kubectl_reads_them()
    {
        var node = YamlJson.ParseSingle("a: 1\nb: \"1\"\nc: true\nd: 1.5\ne: ~\nf: 64Mi\ng: |\n  text\n")!;
        Assert.Equal("{\"a\":1,\"b\":\"1\",\"c\":true,\"d\":1.5,\"e\":null,\"f\":\"64Mi\",\"g\":\"text\\n\"}", node.ToJsonString());
        var e = Assert.Throws<FormatException>(() => YamlJson.ParseSingle("a: [1,\nb: 2"));
        Assert.StartsWith("invalid YAML", e.Message, StringComparison.Ordinal);
    }
}
